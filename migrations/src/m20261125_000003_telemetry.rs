//! Observed data: metric points and their rollups, usage events, micro-operation
//! events, end-user behaviour events; and the organisation's privacy settings.
//! Timestamps are unix milliseconds (bigint): compact, and the same on both engines.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .add_column(boolean(Organizations::StoreBehaviourAttributes).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .add_column(string(Organizations::PrivacySalt).default(""))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MetricPoints::Table)
                    .col(string(MetricPoints::OrganizationId))
                    .col(string(MetricPoints::Workload))
                    .col(string(MetricPoints::Metric))
                    .col(big_integer(MetricPoints::Ts))
                    .col(double(MetricPoints::Value))
                    // The key is the idempotency key: a replayed point is a duplicate.
                    .primary_key(
                        Index::create()
                            .col(MetricPoints::OrganizationId)
                            .col(MetricPoints::Workload)
                            .col(MetricPoints::Metric)
                            .col(MetricPoints::Ts),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_metric_points_ts")
                    .table(MetricPoints::Table)
                    .col(MetricPoints::Ts)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MetricRollups::Table)
                    .col(string(MetricRollups::OrganizationId))
                    .col(string(MetricRollups::Workload))
                    .col(string(MetricRollups::Metric))
                    .col(integer(MetricRollups::Resolution))
                    .col(big_integer(MetricRollups::BucketStart))
                    .col(big_integer(MetricRollups::Count))
                    .col(double(MetricRollups::Sum))
                    .col(double(MetricRollups::Min))
                    .col(double(MetricRollups::Max))
                    .col(double(MetricRollups::Last))
                    .col(big_integer(MetricRollups::LastTs))
                    .primary_key(
                        Index::create()
                            .col(MetricRollups::OrganizationId)
                            .col(MetricRollups::Workload)
                            .col(MetricRollups::Metric)
                            .col(MetricRollups::Resolution)
                            .col(MetricRollups::BucketStart),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UsageEvents::Table)
                    .col(string(UsageEvents::OrganizationId))
                    .col(string(UsageEvents::Id))
                    .col(string(UsageEvents::EventType))
                    .col(double(UsageEvents::Quantity))
                    .col(big_integer(UsageEvents::Ts))
                    .col(string_null(UsageEvents::Workload))
                    .col(text_null(UsageEvents::Attributes))
                    // Hash of the content: the same id with other content is a conflict.
                    .col(string(UsageEvents::Fingerprint))
                    .col(big_integer(UsageEvents::ReceivedAt))
                    .primary_key(
                        Index::create()
                            .col(UsageEvents::OrganizationId)
                            .col(UsageEvents::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_usage_events_org_ts")
                    .table(UsageEvents::Table)
                    .col(UsageEvents::OrganizationId)
                    .col(UsageEvents::Ts)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MicroOperations::Table)
                    .col(string(MicroOperations::OrganizationId))
                    .col(string(MicroOperations::OperationId))
                    .col(string(MicroOperations::MicroOperationType))
                    .col(big_integer(MicroOperations::Ts))
                    .col(string_null(MicroOperations::Workload))
                    .col(big_integer(MicroOperations::CpuCycles))
                    .col(big_integer(MicroOperations::MemoryBytes))
                    .col(big_integer(MicroOperations::NetworkBytes))
                    .col(big_integer(MicroOperations::DiskBytes))
                    .col(double(MicroOperations::ExecutionTimeMs))
                    .primary_key(
                        Index::create()
                            .col(MicroOperations::OrganizationId)
                            .col(MicroOperations::OperationId)
                            .col(MicroOperations::MicroOperationType)
                            .col(MicroOperations::Ts),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(BehaviourEvents::Table)
                    .col(string(BehaviourEvents::OrganizationId))
                    .col(string(BehaviourEvents::Id))
                    .col(string(BehaviourEvents::Kind))
                    .col(string_null(BehaviourEvents::Name))
                    .col(big_integer(BehaviourEvents::Ts))
                    .col(string_null(BehaviourEvents::Workload))
                    // Salted hash, never the customer's end-user identifier itself.
                    .col(string_null(BehaviourEvents::UserHash))
                    .col(string_null(BehaviourEvents::Device))
                    .col(string_null(BehaviourEvents::Geo))
                    .primary_key(
                        Index::create()
                            .col(BehaviourEvents::OrganizationId)
                            .col(BehaviourEvents::Id),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            BehaviourEvents::Table.into_iden(),
            MicroOperations::Table.into_iden(),
            UsageEvents::Table.into_iden(),
            MetricRollups::Table.into_iden(),
            MetricPoints::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for col in [
            Organizations::PrivacySalt,
            Organizations::StoreBehaviourAttributes,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Organizations::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    StoreBehaviourAttributes,
    PrivacySalt,
}

#[derive(DeriveIden)]
enum MetricPoints {
    Table,
    OrganizationId,
    Workload,
    Metric,
    Ts,
    Value,
}

#[derive(DeriveIden)]
enum MetricRollups {
    Table,
    OrganizationId,
    Workload,
    Metric,
    Resolution,
    BucketStart,
    Count,
    Sum,
    Min,
    Max,
    Last,
    LastTs,
}

#[derive(DeriveIden)]
enum UsageEvents {
    Table,
    OrganizationId,
    Id,
    EventType,
    Quantity,
    Ts,
    Workload,
    Attributes,
    Fingerprint,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum MicroOperations {
    Table,
    OrganizationId,
    OperationId,
    MicroOperationType,
    Ts,
    Workload,
    CpuCycles,
    MemoryBytes,
    NetworkBytes,
    DiskBytes,
    ExecutionTimeMs,
}

#[derive(DeriveIden)]
enum BehaviourEvents {
    Table,
    OrganizationId,
    Id,
    Kind,
    Name,
    Ts,
    Workload,
    UserHash,
    Device,
    Geo,
}
