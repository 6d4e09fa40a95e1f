//! The model registry: each forecasting version per horizon with its measured
//! accuracy on recent data, and which one is live. A version goes live only
//! when it beat the live one on the same data.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ModelVersions::Table)
                    .col(string(ModelVersions::Horizon))
                    .col(string(ModelVersions::Version))
                    // candidate | live | retired
                    .col(string(ModelVersions::Status))
                    .col(double_null(ModelVersions::Mase))
                    .col(double_null(ModelVersions::Coverage))
                    .col(big_integer(ModelVersions::Steps).default(0))
                    .col(big_integer(ModelVersions::Series).default(0))
                    .col(big_integer(ModelVersions::ScoredAt))
                    .col(big_integer_null(ModelVersions::PromotedAt))
                    // The live version's accuracy over the last hours, between scorings.
                    .col(double_null(ModelVersions::RecentMase))
                    .col(big_integer_null(ModelVersions::RecentAt))
                    .col(string_null(ModelVersions::Note))
                    .primary_key(
                        Index::create()
                            .col(ModelVersions::Horizon)
                            .col(ModelVersions::Version),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ModelVersions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ModelVersions {
    Table,
    Horizon,
    Version,
    Status,
    Mase,
    Coverage,
    Steps,
    Series,
    ScoredAt,
    PromotedAt,
    RecentMase,
    RecentAt,
    Note,
}
