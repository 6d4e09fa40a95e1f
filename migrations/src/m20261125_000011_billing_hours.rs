//! What billing needs recorded as each hour closes, so that re-rating later
//! finds the same inputs: the platform's load (for demand multipliers) and
//! whether each organisation's workload profiles were current (for the
//! profile discount).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PlatformLoad::Table)
                    .col(big_integer(PlatformLoad::Hour).primary_key())
                    // Instance-milliseconds in force across every organisation.
                    .col(big_integer(PlatformLoad::InstanceMs))
                    .col(big_integer(PlatformLoad::CapacityInstances))
                    // Decimal text, 0..: instance-ms / (capacity × one hour).
                    .col(string(PlatformLoad::Load))
                    .col(big_integer(PlatformLoad::RecordedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ProfileHours::Table)
                    .col(string(ProfileHours::OrganizationId))
                    .col(big_integer(ProfileHours::Hour))
                    .col(boolean(ProfileHours::Current))
                    .primary_key(
                        Index::create()
                            .col(ProfileHours::OrganizationId)
                            .col(ProfileHours::Hour),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ProfileHours::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PlatformLoad::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PlatformLoad {
    Table,
    Hour,
    InstanceMs,
    CapacityInstances,
    Load,
    RecordedAt,
}

#[derive(DeriveIden)]
enum ProfileHours {
    Table,
    OrganizationId,
    Hour,
    Current,
}
