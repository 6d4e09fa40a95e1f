//! The audit log of security-relevant actions.

use chrono::{DateTime, Utc};
use headroom_core::accounts::AuditAction;
use sea_orm::ActiveValue::{NotSet, Set};
use std::collections::{BTreeSet, HashMap};

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entities::{api_key, audit_log, organization, user};
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
    /// The actor's e-mail, while the user exists.
    pub actor_email: Option<String>,
    /// The name of the API key that acted, while the key's record exists.
    pub actor_api_key_name: Option<String>,
    pub organization_name: Option<String>,
}

/// Which entries to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries older than this one (the id of the last entry of the previous page).
    pub before: Option<i64>,
    pub action: Option<AuditAction>,
    /// Only this organisation's entries; ignored when a tenant is given (it wins).
    pub organization_id: Option<String>,
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

    /// Newest first (by id: the order entries were written in), `limit` at most.
    /// `None` reads every organisation's entries (platform admins).
    pub async fn audit_log(
        &self,
        tenant: Option<&Tenant>,
        filter: &AuditFilter,
        limit: u64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut q = audit_log::Entity::find()
            .order_by_desc(audit_log::Column::Id)
            .limit(limit);
        match (tenant, &filter.organization_id) {
            (Some(t), _) => q = q.filter(audit_log::Column::OrganizationId.eq(t.id())),
            (None, Some(org)) => q = q.filter(audit_log::Column::OrganizationId.eq(org.as_str())),
            (None, None) => {}
        }
        if let Some(before) = filter.before {
            q = q.filter(audit_log::Column::Id.lt(before));
        }
        if let Some(action) = filter.action {
            q = q.filter(audit_log::Column::Action.eq(action.as_str()));
        }
        let models = q.all(self.conn()).await?;
        let names = self.audit_names(tenant, &models).await?;
        Ok(models
            .into_iter()
            .map(|m| AuditEntry {
                actor_email: m
                    .actor_user_id
                    .as_ref()
                    .and_then(|u| names.emails.get(u))
                    .cloned(),
                actor_api_key_name: m
                    .actor_api_key_id
                    .as_ref()
                    .and_then(|k| names.keys.get(k))
                    .cloned(),
                organization_name: m
                    .organization_id
                    .as_ref()
                    .and_then(|o| names.orgs.get(o))
                    .cloned(),
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

    /// The e-mails, key names and organisation names a page of entries names:
    /// three lookups by primary key instead of a join per row. Read for a
    /// tenant, only its own users and keys are named (a platform
    /// administrator's change to the organisation shows no e-mail).
    async fn audit_names(
        &self,
        tenant: Option<&Tenant>,
        models: &[audit_log::Model],
    ) -> Result<AuditNames, StoreError> {
        fn ids<'a>(it: impl Iterator<Item = Option<&'a String>>) -> Vec<String> {
            it.flatten()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        }
        let users = ids(models.iter().map(|m| m.actor_user_id.as_ref()));
        let keys = ids(models.iter().map(|m| m.actor_api_key_id.as_ref()));
        let orgs = ids(models.iter().map(|m| m.organization_id.as_ref()));
        let mut names = AuditNames::default();
        if !users.is_empty() {
            let mut q = user::Entity::find().filter(user::Column::Id.is_in(users));
            if let Some(t) = tenant {
                q = q.filter(user::Column::OrganizationId.eq(t.id()));
            }
            for u in q.all(self.conn()).await? {
                names.emails.insert(u.id, u.email);
            }
        }
        if !keys.is_empty() {
            let mut q = api_key::Entity::find().filter(api_key::Column::Id.is_in(keys));
            if let Some(t) = tenant {
                q = q.filter(api_key::Column::OrganizationId.eq(t.id()));
            }
            for k in q.all(self.conn()).await? {
                names.keys.insert(k.id, k.name);
            }
        }
        if !orgs.is_empty() {
            for o in organization::Entity::find()
                .filter(organization::Column::Id.is_in(orgs))
                .all(self.conn())
                .await?
            {
                names.orgs.insert(o.id, o.name);
            }
        }
        Ok(names)
    }
}

#[derive(Default)]
struct AuditNames {
    emails: HashMap<String, String>,
    keys: HashMap<String, String>,
    orgs: HashMap<String, String>,
}
