//! The slot of the decision whose outcome the stored controller state last
//! learnt. The allocation job keeps states in memory between ticks and stores
//! each one only every so many ticks (a checkpoint); this says how old a
//! stored state is, so a worker knows whether its own copy is newer and
//! whether a state it loads missed ticks.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AllocationSettings::Table)
                    .add_column(big_integer_null(AllocationSettings::ControllerStateSlot))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AllocationSettings::Table)
                    .drop_column(AllocationSettings::ControllerStateSlot)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum AllocationSettings {
    Table,
    ControllerStateSlot,
}
