//! Allocation: per-workload controller settings and state, and the decision
//! log (every decision with the inputs it saw and what became of it).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AllocationSettings::Table)
                    .col(string(AllocationSettings::OrganizationId))
                    .col(string(AllocationSettings::Workload))
                    // The metric that measures demand, and how much of it one
                    // instance serves at 100 %.
                    .col(string(AllocationSettings::Metric))
                    .col(double(AllocationSettings::UnitsPerInstance))
                    .col(string(AllocationSettings::Mode))
                    .col(integer(AllocationSettings::MinInstances))
                    .col(integer(AllocationSettings::MaxInstances))
                    .col(double(AllocationSettings::Target))
                    .col(double(AllocationSettings::Priority))
                    .col(string(AllocationSettings::Provider))
                    .col(string_null(AllocationSettings::ProviderRef))
                    // Instances commanded (serving or booting) as last known.
                    .col(integer(AllocationSettings::Commanded))
                    // The controller's learnt state (JSON); NULL before its first tick.
                    .col(text_null(AllocationSettings::State))
                    .col(big_integer_null(AllocationSettings::LastSuggestionAt))
                    .col(big_integer(AllocationSettings::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(AllocationSettings::OrganizationId)
                            .col(AllocationSettings::Workload),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AllocationDecisions::Table)
                    .col(string(AllocationDecisions::OrganizationId))
                    .col(string(AllocationDecisions::Id))
                    .col(string(AllocationDecisions::Workload))
                    // `controller` (one per tick) or `suggestion`.
                    .col(string(AllocationDecisions::Source))
                    // Schedule slot (controller) or id-derived key (suggestion):
                    // a retried tick finds its decision already made.
                    .col(big_integer(AllocationDecisions::Slot))
                    .col(big_integer(AllocationDecisions::DecidedAt))
                    .col(string(AllocationDecisions::Mode))
                    .col(integer(AllocationDecisions::BeforeInstances))
                    .col(integer(AllocationDecisions::AfterInstances))
                    .col(integer(AllocationDecisions::Warm))
                    .col(string(AllocationDecisions::Reason))
                    // JSON array of limits that cut the decision short.
                    .col(text(AllocationDecisions::Limits))
                    .col(double_null(AllocationDecisions::Observed))
                    .col(double_null(AllocationDecisions::SizedFor))
                    .col(string_null(AllocationDecisions::ForecastVersion))
                    // logged | no_provider | pending | applied | failed
                    .col(string(AllocationDecisions::Status))
                    // Idempotency token sent with the provider command.
                    .col(string(AllocationDecisions::CommandId))
                    .col(text_null(AllocationDecisions::Detail))
                    .primary_key(
                        Index::create()
                            .col(AllocationDecisions::OrganizationId)
                            .col(AllocationDecisions::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_allocation_decisions_slot")
                    .table(AllocationDecisions::Table)
                    .col(AllocationDecisions::OrganizationId)
                    .col(AllocationDecisions::Workload)
                    .col(AllocationDecisions::Source)
                    .col(AllocationDecisions::Slot)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_allocation_decisions_time")
                    .table(AllocationDecisions::Table)
                    .col(AllocationDecisions::OrganizationId)
                    .col(AllocationDecisions::DecidedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AllocationDecisions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AllocationSettings::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AllocationSettings {
    Table,
    OrganizationId,
    Workload,
    Metric,
    UnitsPerInstance,
    Mode,
    MinInstances,
    MaxInstances,
    Target,
    Priority,
    Provider,
    ProviderRef,
    Commanded,
    State,
    LastSuggestionAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AllocationDecisions {
    Table,
    OrganizationId,
    Id,
    Workload,
    Source,
    Slot,
    DecidedAt,
    Mode,
    BeforeInstances,
    AfterInstances,
    Warm,
    Reason,
    Limits,
    Observed,
    SizedFor,
    ForecastVersion,
    Status,
    CommandId,
    Detail,
}
