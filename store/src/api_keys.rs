//! API keys: stored as a public id plus a hash of the secret, scoped, revocable.

use chrono::{DateTime, Duration, Utc};
use headroom_core::accounts::{KEY_PREFIX, Scopes};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::entities::api_key;
use crate::{Db, StoreError, Tenant, new_id};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    /// `hr_<key id>`: enough to recognise the key, not to use it.
    pub prefix: String,
    pub scopes: Scopes,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub struct NewApiKey<'a> {
    pub name: &'a str,
    pub key_id: &'a str,
    pub secret_hash: String,
    pub scopes: &'a Scopes,
    pub created_by: Option<&'a str>,
}

fn from_model(m: api_key::Model) -> Result<(ApiKey, String), StoreError> {
    let key = ApiKey {
        scopes: Scopes::from_db(&m.scopes).map_err(StoreError::Corrupt)?,
        prefix: format!("{KEY_PREFIX}{}", m.key_id),
        id: m.id,
        organization_id: m.organization_id,
        name: m.name,
        created_by: m.created_by,
        created_at: m.created_at,
        last_used_at: m.last_used_at,
        revoked_at: m.revoked_at,
    };
    Ok((key, m.secret_hash))
}

/// `last_used_at` is a hint, not an access log: write it at most this often per key.
const TOUCH_EVERY: Duration = Duration::seconds(60);

impl Db {
    pub async fn create_api_key(
        &self,
        tenant: &Tenant,
        new: NewApiKey<'_>,
    ) -> Result<ApiKey, StoreError> {
        let m = api_key::ActiveModel {
            id: Set(new_id()),
            organization_id: Set(tenant.id().to_owned()),
            name: Set(new.name.to_owned()),
            key_id: Set(new.key_id.to_owned()),
            secret_hash: Set(new.secret_hash),
            scopes: Set(new.scopes.to_db()),
            created_by: Set(new.created_by.map(str::to_owned)),
            created_at: Set(Utc::now()),
            last_used_at: Set(None),
            revoked_at: Set(None),
        }
        .insert(self.conn())
        .await
        .map_err(|e| StoreError::on_unique(e, "key id collision, try again"))?;
        Ok(from_model(m)?.0)
    }

    /// The organisation's keys, newest first, revoked ones included.
    pub async fn api_keys(&self, tenant: &Tenant) -> Result<Vec<ApiKey>, StoreError> {
        api_key::Entity::find()
            .filter(api_key::Column::OrganizationId.eq(tenant.id()))
            .order_by_desc(api_key::Column::CreatedAt)
            .all(self.conn())
            .await?
            .into_iter()
            .map(|m| from_model(m).map(|(k, _)| k))
            .collect()
    }

    /// Revokes at once; revoking twice keeps the first time. `None` when the key is
    /// not this organisation's.
    pub async fn revoke_api_key(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let now = Utc::now();
        api_key::Entity::update_many()
            .col_expr(
                api_key::Column::RevokedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::OrganizationId.eq(tenant.id()))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(self.conn())
            .await?;
        api_key::Entity::find_by_id(id.to_owned())
            .filter(api_key::Column::OrganizationId.eq(tenant.id()))
            .one(self.conn())
            .await?
            .map(|m| from_model(m).map(|(k, _)| k))
            .transpose()
    }

    /// For authentication: the key with this public id and its secret hash.
    pub async fn api_key_for_auth(
        &self,
        key_id: &str,
    ) -> Result<Option<(ApiKey, String)>, StoreError> {
        api_key::Entity::find()
            .filter(api_key::Column::KeyId.eq(key_id))
            .one(self.conn())
            .await?
            .map(from_model)
            .transpose()
    }

    /// Records use, at most once a minute per key.
    pub async fn touch_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let now = Utc::now();
        if key.last_used_at.is_some_and(|t| now - t < TOUCH_EVERY) {
            return Ok(());
        }
        api_key::Entity::update_many()
            .col_expr(
                api_key::Column::LastUsedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(api_key::Column::Id.eq(key.id.clone()))
            .exec(self.conn())
            .await?;
        Ok(())
    }
}
