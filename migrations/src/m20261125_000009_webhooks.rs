//! Outgoing webhooks: endpoints per organisation with event filters and
//! signing secrets (the previous one kept while a rotation overlaps), one
//! delivery per event and endpoint, and every attempt with its status code.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(string(WebhookEndpoints::OrganizationId))
                    .col(string(WebhookEndpoints::Id))
                    .col(string(WebhookEndpoints::Url))
                    .col(string_null(WebhookEndpoints::Description))
                    // JSON array of event types; empty: every type.
                    .col(text(WebhookEndpoints::EventTypes))
                    .col(string(WebhookEndpoints::Secret))
                    .col(string_null(WebhookEndpoints::PreviousSecret))
                    .col(big_integer_null(WebhookEndpoints::PreviousUntil))
                    // active | disabled
                    .col(string(WebhookEndpoints::Status))
                    .col(string_null(WebhookEndpoints::DisabledReason))
                    // Since when every attempt has failed; NULL while healthy.
                    .col(big_integer_null(WebhookEndpoints::FailingSince))
                    .col(big_integer(WebhookEndpoints::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(WebhookEndpoints::OrganizationId)
                            .col(WebhookEndpoints::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(string(WebhookDeliveries::OrganizationId))
                    // The `webhook-id`: the same on every attempt and replay.
                    .col(string(WebhookDeliveries::Id))
                    .col(string(WebhookDeliveries::EndpointId))
                    .col(string(WebhookDeliveries::EventType))
                    .col(text(WebhookDeliveries::Payload))
                    .col(big_integer(WebhookDeliveries::CreatedAt))
                    // pending | delivered | failed
                    .col(string(WebhookDeliveries::Status))
                    .col(integer(WebhookDeliveries::Attempts))
                    .col(big_integer_null(WebhookDeliveries::NextAttemptAt))
                    .col(integer_null(WebhookDeliveries::LastStatusCode))
                    .col(text_null(WebhookDeliveries::LastError))
                    .col(big_integer_null(WebhookDeliveries::DeliveredAt))
                    .primary_key(
                        Index::create()
                            .col(WebhookDeliveries::OrganizationId)
                            .col(WebhookDeliveries::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_endpoint")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::OrganizationId)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(string(WebhookAttempts::OrganizationId))
                    .col(string(WebhookAttempts::DeliveryId))
                    .col(integer(WebhookAttempts::N))
                    .col(big_integer(WebhookAttempts::At))
                    .col(integer_null(WebhookAttempts::StatusCode))
                    .col(text_null(WebhookAttempts::Error))
                    .col(integer(WebhookAttempts::DurationMs))
                    .primary_key(
                        Index::create()
                            .col(WebhookAttempts::OrganizationId)
                            .col(WebhookAttempts::DeliveryId)
                            .col(WebhookAttempts::N),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            WebhookAttempts::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    OrganizationId,
    Id,
    Url,
    Description,
    EventTypes,
    Secret,
    PreviousSecret,
    PreviousUntil,
    Status,
    DisabledReason,
    FailingSince,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    OrganizationId,
    Id,
    EndpointId,
    EventType,
    Payload,
    CreatedAt,
    Status,
    Attempts,
    NextAttemptAt,
    LastStatusCode,
    LastError,
    DeliveredAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    OrganizationId,
    DeliveryId,
    N,
    At,
    StatusCode,
    Error,
    DurationMs,
}
