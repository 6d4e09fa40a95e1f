//! What the AWS provider needs per workload: the instance type its Auto
//! Scaling group should launch (vertical scaling), whether spot capacity may
//! be bought and the on-demand price it is weighed against, and the warm pool
//! in force, so the reconciliation can repair it like the fleet.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            string_null(AllocationSettings::InstanceType),
            boolean(AllocationSettings::AllowSpot)
                .default(false)
                .to_owned(),
            big_integer_null(AllocationSettings::OnDemandMicrosPerHour),
            integer(AllocationSettings::WarmCommanded)
                .default(0)
                .to_owned(),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(AllocationSettings::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            AllocationSettings::InstanceType,
            AllocationSettings::AllowSpot,
            AllocationSettings::OnDemandMicrosPerHour,
            AllocationSettings::WarmCommanded,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AllocationSettings::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum AllocationSettings {
    Table,
    InstanceType,
    AllowSpot,
    OnDemandMicrosPerHour,
    WarmCommanded,
}
