//! The controller's decisions that command nothing (logged, no note: most of a
//! steady fleet's) kept as compact groups, one row per organisation, tick and
//! group of about 250 workloads, instead of a row each: a tick over 100,000
//! workloads wrote 100,000 rows (and 28.8 M a day), now a few hundred. A
//! group's `body` holds its decisions in binary; one that commands
//! something (or carries a note) stays a row of `allocation_decisions` and
//! is only named in its group. Chunk 0 of an (organisation, slot) is always
//! written and claims the tick: a retried tick finds it and decides nothing
//! twice. `chunks` is how many groups the tick was split into (a workload is
//! in group `hash(workload) % chunks`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AllocationDecisionGroups::Table)
                    .col(string(AllocationDecisionGroups::OrganizationId))
                    .col(big_integer(AllocationDecisionGroups::Slot))
                    .col(integer(AllocationDecisionGroups::Chunk))
                    .col(integer(AllocationDecisionGroups::Chunks))
                    .col(big_integer(AllocationDecisionGroups::DecidedAt))
                    .col(integer(AllocationDecisionGroups::Decisions))
                    .col(blob(AllocationDecisionGroups::Body))
                    .primary_key(
                        Index::create()
                            .col(AllocationDecisionGroups::OrganizationId)
                            .col(AllocationDecisionGroups::Slot)
                            .col(AllocationDecisionGroups::Chunk),
                    )
                    .to_owned(),
            )
            .await?;
        // Listing newest first, and pruning by age.
        manager
            .create_index(
                Index::create()
                    .name("idx_decision_groups_org_decided")
                    .table(AllocationDecisionGroups::Table)
                    .col(AllocationDecisionGroups::OrganizationId)
                    .col(AllocationDecisionGroups::DecidedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(AllocationDecisionGroups::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum AllocationDecisionGroups {
    Table,
    OrganizationId,
    Slot,
    Chunk,
    Chunks,
    DecidedAt,
    Decisions,
    Body,
}
