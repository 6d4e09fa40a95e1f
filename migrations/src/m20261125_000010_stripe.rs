//! Stripe: each organisation's customer, the objects Headroom made there
//! (meter, product, metered prices, subscriptions), the meter events pushed (one per
//! organisation and closed hour, recorded before it is sent so a restarted
//! worker re-sends the same identifier and value), and received webhook
//! events (replay protection).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .add_column(string_null(Organizations::StripeCustomerId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MeterPushes::Table)
                    .col(string(MeterPushes::OrganizationId))
                    // Start of the closed hour the value covers up to.
                    .col(big_integer(MeterPushes::Hour))
                    // Stripe's `identifier`: the same on every retry.
                    .col(string_uniq(MeterPushes::Identifier))
                    // `2026-11`
                    .col(string(MeterPushes::Period))
                    .col(string(MeterPushes::EventName))
                    .col(string(MeterPushes::CustomerId))
                    // Minor currency units charged since the previous push.
                    .col(big_integer(MeterPushes::Value))
                    .col(string(MeterPushes::Currency))
                    // pending | sent
                    .col(string(MeterPushes::Status))
                    .col(integer(MeterPushes::Attempts))
                    .col(text_null(MeterPushes::LastError))
                    .col(big_integer(MeterPushes::CreatedAt))
                    .col(big_integer_null(MeterPushes::SentAt))
                    .primary_key(
                        Index::create()
                            .col(MeterPushes::OrganizationId)
                            .col(MeterPushes::Hour),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StripeObjects::Table)
                    // `meter:<event name>`, `product`, `price:<currency>:<meter>`,
                    // `subscription:<organisation>`
                    .col(string(StripeObjects::Key).primary_key())
                    .col(string(StripeObjects::StripeId))
                    .col(big_integer(StripeObjects::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StripeEvents::Table)
                    .col(string(StripeEvents::Id).primary_key())
                    .col(string(StripeEvents::Kind))
                    .col(big_integer(StripeEvents::Created))
                    .col(big_integer(StripeEvents::ReceivedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(StripeEvents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(StripeObjects::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MeterPushes::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .drop_column(Organizations::StripeCustomerId)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    StripeCustomerId,
}

#[derive(DeriveIden)]
enum MeterPushes {
    Table,
    OrganizationId,
    Hour,
    Identifier,
    Period,
    EventName,
    CustomerId,
    Value,
    Currency,
    Status,
    Attempts,
    LastError,
    CreatedAt,
    SentAt,
}

#[derive(DeriveIden)]
enum StripeObjects {
    Table,
    Key,
    StripeId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StripeEvents {
    Table,
    Id,
    Kind,
    Created,
    ReceivedAt,
}
