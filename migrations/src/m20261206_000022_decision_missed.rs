//! Whether demand exceeded the fleet in force when the controller decided,
//! recorded with the decision. Billing counts those ticks against the SLA;
//! before this it worked them out from the workload's current instance size,
//! so changing the size re-rated hours already past. Decisions logged before
//! this column existed have none, and are still judged that way.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AllocationDecisions::Table)
                    .add_column(boolean_null(AllocationDecisions::Missed))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AllocationDecisions::Table)
                    .drop_column(AllocationDecisions::Missed)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum AllocationDecisions {
    Table,
    Missed,
}
