//! The audit log of security-relevant actions.

use chrono::{DateTime, Utc};
use headroom_core::accounts::AuditAction;
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entities::audit_log;
use crate::{Db, StoreError, Tenant};

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub organization_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_api_key_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub details: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// Who did it, from where. Built once per request by the server.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub organization_id: Option<String>,
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
    pub ip: Option<String>,
}

impl Db {
    pub async fn audit(
        &self,
        actor: &Actor,
        action: AuditAction,
        target: Option<&str>,
        details: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        audit_log::ActiveModel {
            id: NotSet,
            organization_id: Set(actor.organization_id.clone()),
            actor_user_id: Set(actor.user_id.clone()),
            actor_api_key_id: Set(actor.api_key_id.clone()),
            action: Set(action.as_str().to_owned()),
            target: Set(target.map(str::to_owned)),
            ip: Set(actor.ip.clone()),
            details: Set(details.map(|d| d.to_string())),
            created_at: Set(Utc::now()),
        }
        .insert(self.conn())
        .await?;
        Ok(())
    }

    /// Newest first. `None` reads every organisation's entries (platform admins).
    pub async fn audit_log(
        &self,
        tenant: Option<&Tenant>,
        limit: u64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut q = audit_log::Entity::find()
            .order_by_desc(audit_log::Column::CreatedAt)
            .order_by_desc(audit_log::Column::Id)
            .limit(limit);
        if let Some(t) = tenant {
            q = q.filter(audit_log::Column::OrganizationId.eq(t.id()));
        }
        Ok(q.all(self.conn())
            .await?
            .into_iter()
            .map(|m| AuditEntry {
                id: m.id,
                organization_id: m.organization_id,
                actor_user_id: m.actor_user_id,
                actor_api_key_id: m.actor_api_key_id,
                action: m.action,
                target: m.target,
                ip: m.ip,
                details: m.details.and_then(|d| serde_json::from_str(&d).ok()),
                created_at: m.created_at,
            })
            .collect())
    }
}
