//! Billing: pricing rules (effective-dated, never edited), price changes as
//! customers saw them, budget caps and the thresholds already announced, and
//! the notifications pushed to browsers. Money is stored as decimal text so
//! neither backend rounds it.

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
                    .add_column(string(Organizations::Currency).default("usd"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PriceRules::Table)
                    .col(string(PriceRules::Id).primary_key())
                    // default | tier | organization
                    .col(string(PriceRules::Scope))
                    // The tier or organisation id; empty for default.
                    .col(string(PriceRules::ScopeRef))
                    // price | tier_premium | demand_multiplier | sla_credit | profile_discount
                    .col(string(PriceRules::Kind))
                    .col(string_null(PriceRules::Dimension))
                    // unit_price, rate or multiplier
                    .col(string(PriceRules::Amount))
                    .col(string_null(PriceRules::MinLoad))
                    .col(string(PriceRules::Currency))
                    .col(big_integer(PriceRules::EffectiveFrom))
                    .col(big_integer_null(PriceRules::EffectiveTo))
                    .col(big_integer(PriceRules::CreatedAt))
                    .col(string_null(PriceRules::CreatedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PriceChanges::Table)
                    .col(string(PriceChanges::OrganizationId))
                    .col(string(PriceChanges::Id))
                    .col(big_integer(PriceChanges::At))
                    // A dimension (`resource:instance`) or `run_rate:<workload>`.
                    .col(string(PriceChanges::Subject))
                    .col(string_null(PriceChanges::OldPrice))
                    .col(string_null(PriceChanges::NewPrice))
                    .col(string(PriceChanges::Currency))
                    // rule | allocation
                    .col(string(PriceChanges::Reason))
                    // The rule or decision that caused it.
                    .col(string(PriceChanges::Cause))
                    .primary_key(
                        Index::create()
                            .col(PriceChanges::OrganizationId)
                            .col(PriceChanges::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_price_changes_cause")
                    .table(PriceChanges::Table)
                    .col(PriceChanges::OrganizationId)
                    .col(PriceChanges::Cause)
                    .col(PriceChanges::Subject)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_price_changes_time")
                    .table(PriceChanges::Table)
                    .col(PriceChanges::OrganizationId)
                    .col(PriceChanges::At)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BudgetCaps::Table)
                    .col(string(BudgetCaps::OrganizationId).primary_key())
                    .col(string(BudgetCaps::Amount))
                    .col(string(BudgetCaps::Currency))
                    // notify | reduce | block
                    .col(string(BudgetCaps::Action))
                    .col(big_integer(BudgetCaps::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BudgetNotices::Table)
                    .col(string(BudgetNotices::OrganizationId))
                    // `2026-11`
                    .col(string(BudgetNotices::Period))
                    .col(integer(BudgetNotices::Threshold))
                    .col(big_integer(BudgetNotices::At))
                    .primary_key(
                        Index::create()
                            .col(BudgetNotices::OrganizationId)
                            .col(BudgetNotices::Period)
                            .col(BudgetNotices::Threshold),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    // Global order: the stream's event id and resume point.
                    .col(big_pk_auto(Notifications::Seq))
                    .col(string(Notifications::OrganizationId))
                    // price_change | budget_threshold | allocation_decision
                    .col(string(Notifications::Kind))
                    .col(string(Notifications::Title))
                    .col(text(Notifications::Body))
                    .col(big_integer(Notifications::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_notifications_org")
                    .table(Notifications::Table)
                    .col(Notifications::OrganizationId)
                    .col(Notifications::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            Notifications::Table.into_iden(),
            BudgetNotices::Table.into_iden(),
            BudgetCaps::Table.into_iden(),
            PriceChanges::Table.into_iden(),
            PriceRules::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .drop_column(Organizations::Currency)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Currency,
}

#[derive(DeriveIden)]
enum PriceRules {
    Table,
    Id,
    Scope,
    ScopeRef,
    Kind,
    Dimension,
    Amount,
    MinLoad,
    Currency,
    EffectiveFrom,
    EffectiveTo,
    CreatedAt,
    CreatedBy,
}

#[derive(DeriveIden)]
enum PriceChanges {
    Table,
    OrganizationId,
    Id,
    At,
    Subject,
    OldPrice,
    NewPrice,
    Currency,
    Reason,
    Cause,
}

#[derive(DeriveIden)]
enum BudgetCaps {
    Table,
    OrganizationId,
    Amount,
    Currency,
    Action,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum BudgetNotices {
    Table,
    OrganizationId,
    Period,
    Threshold,
    At,
}

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Seq,
    OrganizationId,
    Kind,
    Title,
    Body,
    CreatedAt,
}
