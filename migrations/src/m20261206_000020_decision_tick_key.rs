//! The decision log's one-decision-per-slot key, ordered by tick.
//!
//! The key was (organisation, workload, source, slot): each tick's decision
//! for a workload went into that workload's own part of the index, so a tick
//! over N workloads touched N scattered index pages (and, after a checkpoint,
//! logged each page whole). Ordered (organisation, source, slot, workload),
//! one tick's decisions are neighbours: they fill a few pages at the end of
//! each organisation's range. Same columns, so the same uniqueness and the
//! same `ON CONFLICT` target; lookups name all four columns.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_allocation_decisions_tick")
                    .table(AllocationDecisions::Table)
                    .col(AllocationDecisions::OrganizationId)
                    .col(AllocationDecisions::Source)
                    .col(AllocationDecisions::Slot)
                    .col(AllocationDecisions::Workload)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_allocation_decisions_slot")
                    .table(AllocationDecisions::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
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
            .drop_index(
                Index::drop()
                    .name("idx_allocation_decisions_tick")
                    .table(AllocationDecisions::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum AllocationDecisions {
    Table,
    OrganizationId,
    Workload,
    Source,
    Slot,
}
