//! Organisations, users and invitations.

use chrono::{DateTime, Utc};
use headroom_core::accounts::{Email, Role, Tier};
use headroom_core::billing::{Currency, CurrencyError};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};

use crate::entities::{invitation, organization, user};
use crate::{Db, StoreError, Tenant, new_id};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub tier: Tier,
    pub priority: i32,
    pub created_at: DateTime<Utc>,
    /// Whether device and geography of end-user behaviour events are kept.
    pub store_behaviour_attributes: bool,
    /// What the organisation is billed in.
    pub currency: Currency,
    /// Its customer at Stripe, once created.
    pub stripe_customer_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub organization_id: String,
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
    /// When the user last ended their other sessions.
    pub sessions_ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub invited_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

pub struct NewInvitation<'a> {
    pub email: &'a Email,
    pub role: Role,
    pub token_hash: String,
    pub invited_by: &'a str,
    pub expires_at: DateTime<Utc>,
}

fn org_from(m: organization::Model) -> Result<Organization, StoreError> {
    Ok(Organization {
        tier: m.tier.parse().map_err(StoreError::Corrupt)?,
        currency: m
            .currency
            .parse()
            .map_err(|e: CurrencyError| StoreError::Corrupt(e.to_string()))?,
        stripe_customer_id: m.stripe_customer_id,
        id: m.id,
        name: m.name,
        priority: m.priority,
        created_at: m.created_at,
        store_behaviour_attributes: m.store_behaviour_attributes,
    })
}

fn user_from(m: user::Model) -> Result<User, StoreError> {
    Ok(User {
        role: m.role.parse().map_err(StoreError::Corrupt)?,
        id: m.id,
        organization_id: m.organization_id,
        email: m.email,
        created_at: m.created_at,
        password_changed_at: m.password_changed_at,
        sessions_ended_at: m.sessions_ended_at,
    })
}

/// The user and their password hash, for log-in and password changes.
fn user_with_hash(m: user::Model) -> Result<(User, String), StoreError> {
    let hash = m.password_hash.clone();
    user_from(m).map(|u| (u, hash))
}

fn invitation_from(m: invitation::Model) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        role: m.role.parse().map_err(StoreError::Corrupt)?,
        id: m.id,
        email: m.email,
        invited_by: m.invited_by,
        created_at: m.created_at,
        expires_at: m.expires_at,
    })
}

/// 256 random bits, hex: the per-organisation salt for end-user identifiers.
fn new_salt() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

const EMAIL_TAKEN: &str = "an account with this e-mail address already exists";

fn new_user(
    org_id: &str,
    email: &Email,
    role: Role,
    password_hash: String,
    now: DateTime<Utc>,
) -> user::ActiveModel {
    user::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(org_id.to_owned()),
        email: Set(email.as_str().to_owned()),
        password_hash: Set(password_hash),
        role: Set(role.as_str().to_owned()),
        created_at: Set(now),
        password_changed_at: Set(now),
        sessions_ended_at: Set(None),
    }
}

impl Db {
    /// Sign-up: the organisation and its first owner, together or not at all.
    pub async fn create_organization_with_owner(
        &self,
        name: &str,
        tier: Tier,
        email: &Email,
        password_hash: String,
    ) -> Result<(Organization, User), StoreError> {
        self.create_organization_with_user(name, tier, email, Role::Owner, password_hash)
            .await
    }

    /// Like sign-up, with any role: the operator's own organisation holds the admins.
    pub async fn create_organization_with_user(
        &self,
        name: &str,
        tier: Tier,
        email: &Email,
        role: Role,
        password_hash: String,
    ) -> Result<(Organization, User), StoreError> {
        let now = Utc::now();
        let txn = self.conn().begin().await?;
        let org = organization::ActiveModel {
            id: Set(new_id()),
            name: Set(name.to_owned()),
            tier: Set(tier.as_str().to_owned()),
            priority: Set(tier.default_priority()),
            created_at: Set(now),
            store_behaviour_attributes: Set(false),
            privacy_salt: Set(new_salt()),
            currency: Set(Currency::USD.to_string()),
            stripe_customer_id: Set(None),
        }
        .insert(&txn)
        .await?;
        let user = new_user(&org.id, email, role, password_hash, now)
            .insert(&txn)
            .await
            .map_err(|e| StoreError::on_unique(e, EMAIL_TAKEN))?;
        txn.commit().await?;
        Ok((org_from(org)?, user_from(user)?))
    }

    /// For log-in: the user and their password hash.
    pub async fn user_by_email(&self, email: &Email) -> Result<Option<(User, String)>, StoreError> {
        let found = user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(self.conn())
            .await?;
        found.map(user_with_hash).transpose()
    }

    /// The user behind a session, with their password hash (for password changes).
    pub async fn user_by_id(&self, id: &str) -> Result<Option<(User, String)>, StoreError> {
        let found = user::Entity::find_by_id(id.to_owned())
            .one(self.conn())
            .await?;
        found.map(user_with_hash).transpose()
    }

    pub async fn set_password(
        &self,
        user_id: &str,
        password_hash: String,
    ) -> Result<(), StoreError> {
        let Some(m) = user::Entity::find_by_id(user_id.to_owned())
            .one(self.conn())
            .await?
        else {
            return Ok(());
        };
        let mut m = m.into_active_model();
        m.password_hash = Set(password_hash);
        m.password_changed_at = Set(Utc::now());
        m.update(self.conn()).await?;
        Ok(())
    }

    /// Ends the user's sessions authenticated before `at` (the caller keeps
    /// its own by re-stamping it). False when there is no such user.
    pub async fn end_sessions(&self, user_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let Some(m) = user::Entity::find_by_id(user_id.to_owned())
            .one(self.conn())
            .await?
        else {
            return Ok(false);
        };
        let mut m = m.into_active_model();
        m.sessions_ended_at = Set(Some(at));
        m.update(self.conn()).await?;
        Ok(true)
    }

    pub async fn organization(&self, tenant: &Tenant) -> Result<Option<Organization>, StoreError> {
        organization::Entity::find_by_id(tenant.id().to_owned())
            .one(self.conn())
            .await?
            .map(org_from)
            .transpose()
    }

    /// Every organisation (platform admins only).
    /// A page of organisations by name (then id), for the admin portal:
    /// those whose name holds `search` (any case) or whose id is it, after the
    /// organisation `after` (the last id of the previous page). An unknown
    /// `after` is `None`.
    pub async fn organizations_page(
        &self,
        search: Option<&str>,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Option<Vec<Organization>>, StoreError> {
        use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
        use sea_orm::{Condition, QuerySelect};
        let mut q = organization::Entity::find()
            .order_by_asc(organization::Column::Name)
            .order_by_asc(organization::Column::Id)
            .limit(limit);
        if let Some(text) = search.map(str::trim).filter(|t| !t.is_empty()) {
            let pattern = format!("%{}%", like_escape(&text.to_lowercase()));
            q = q.filter(
                Condition::any()
                    .add(
                        Expr::expr(Func::lower(Expr::col(organization::Column::Name)))
                            .like(LikeExpr::new(pattern).escape('\\')),
                    )
                    .add(organization::Column::Id.eq(text)),
            );
        }
        if let Some(after) = after {
            let Some(last) = organization::Entity::find_by_id(after.to_owned())
                .one(self.conn())
                .await?
            else {
                return Ok(None);
            };
            q = q.filter(
                Condition::any()
                    .add(organization::Column::Name.gt(last.name.clone()))
                    .add(
                        Condition::all()
                            .add(organization::Column::Name.eq(last.name))
                            .add(organization::Column::Id.gt(last.id)),
                    ),
            );
        }
        q.all(self.conn())
            .await?
            .into_iter()
            .map(org_from)
            .collect::<Result<_, _>>()
            .map(Some)
    }

    pub async fn all_organizations(&self) -> Result<Vec<Organization>, StoreError> {
        organization::Entity::find()
            .order_by_asc(organization::Column::CreatedAt)
            .all(self.conn())
            .await?
            .into_iter()
            .map(org_from)
            .collect()
    }

    /// Tier and priority (platform admins only). `None` when there is no such organisation.
    pub async fn update_organization(
        &self,
        id: &str,
        tier: Option<Tier>,
        priority: Option<i32>,
    ) -> Result<Option<Organization>, StoreError> {
        let Some(m) = organization::Entity::find_by_id(id.to_owned())
            .one(self.conn())
            .await?
        else {
            return Ok(None);
        };
        let mut m = m.into_active_model();
        if let Some(tier) = tier {
            m.tier = Set(tier.as_str().to_owned());
        }
        if let Some(priority) = priority {
            m.priority = Set(priority);
        }
        Ok(Some(org_from(m.update(self.conn()).await?)?))
    }

    /// Whether behaviour attributes (device, geography) may be stored, and the salt
    /// for hashing end-user identifiers (created on first use for older rows).
    pub async fn privacy(&self, tenant: &Tenant) -> Result<(bool, String), StoreError> {
        let m = organization::Entity::find_by_id(tenant.id().to_owned())
            .one(self.conn())
            .await?
            .ok_or_else(|| StoreError::Corrupt("tenant without organisation".into()))?;
        if !m.privacy_salt.is_empty() {
            return Ok((m.store_behaviour_attributes, m.privacy_salt));
        }
        let salt = new_salt();
        // Only fill an empty salt: a concurrent first use must not replace a salt in use.
        organization::Entity::update_many()
            .col_expr(
                organization::Column::PrivacySalt,
                sea_orm::sea_query::Expr::value(salt),
            )
            .filter(organization::Column::Id.eq(tenant.id()))
            .filter(organization::Column::PrivacySalt.eq(""))
            .exec(self.conn())
            .await?;
        Box::pin(self.privacy(tenant)).await
    }

    pub async fn set_store_behaviour_attributes(
        &self,
        tenant: &Tenant,
        enabled: bool,
    ) -> Result<(), StoreError> {
        organization::Entity::update_many()
            .col_expr(
                organization::Column::StoreBehaviourAttributes,
                sea_orm::sea_query::Expr::value(enabled),
            )
            .filter(organization::Column::Id.eq(tenant.id()))
            .exec(self.conn())
            .await?;
        Ok(())
    }

    pub async fn members(&self, tenant: &Tenant) -> Result<Vec<User>, StoreError> {
        user::Entity::find()
            .filter(user::Column::OrganizationId.eq(tenant.id()))
            .order_by_asc(user::Column::CreatedAt)
            .all(self.conn())
            .await?
            .into_iter()
            .map(user_from)
            .collect()
    }

    pub async fn member(&self, tenant: &Tenant, user_id: &str) -> Result<Option<User>, StoreError> {
        user::Entity::find_by_id(user_id.to_owned())
            .filter(user::Column::OrganizationId.eq(tenant.id()))
            .one(self.conn())
            .await?
            .map(user_from)
            .transpose()
    }

    pub async fn owner_count(&self, tenant: &Tenant) -> Result<u64, StoreError> {
        Ok(user::Entity::find()
            .filter(user::Column::OrganizationId.eq(tenant.id()))
            .filter(user::Column::Role.eq(Role::Owner.as_str()))
            .count(self.conn())
            .await?)
    }

    /// `None` when the user is not in this organisation.
    pub async fn set_member_role(
        &self,
        tenant: &Tenant,
        user_id: &str,
        role: Role,
    ) -> Result<Option<User>, StoreError> {
        let Some(m) = user::Entity::find_by_id(user_id.to_owned())
            .filter(user::Column::OrganizationId.eq(tenant.id()))
            .one(self.conn())
            .await?
        else {
            return Ok(None);
        };
        let mut m = m.into_active_model();
        m.role = Set(role.as_str().to_owned());
        Ok(Some(user_from(m.update(self.conn()).await?)?))
    }

    /// `false` when the user is not in this organisation.
    pub async fn remove_member(&self, tenant: &Tenant, user_id: &str) -> Result<bool, StoreError> {
        let res = user::Entity::delete_many()
            .filter(user::Column::Id.eq(user_id))
            .filter(user::Column::OrganizationId.eq(tenant.id()))
            .exec(self.conn())
            .await?;
        Ok(res.rows_affected == 1)
    }

    pub async fn create_invitation(
        &self,
        tenant: &Tenant,
        new: NewInvitation<'_>,
    ) -> Result<Invitation, StoreError> {
        let m = invitation::ActiveModel {
            id: Set(new_id()),
            organization_id: Set(tenant.id().to_owned()),
            email: Set(new.email.as_str().to_owned()),
            role: Set(new.role.as_str().to_owned()),
            token_hash: Set(new.token_hash),
            invited_by: Set(new.invited_by.to_owned()),
            created_at: Set(Utc::now()),
            expires_at: Set(new.expires_at),
            accepted_at: Set(None),
        }
        .insert(self.conn())
        .await?;
        invitation_from(m)
    }

    /// Invitations not yet accepted (expired ones included, so owners see them lapse).
    pub async fn pending_invitations(
        &self,
        tenant: &Tenant,
    ) -> Result<Vec<Invitation>, StoreError> {
        invitation::Entity::find()
            .filter(invitation::Column::OrganizationId.eq(tenant.id()))
            .filter(invitation::Column::AcceptedAt.is_null())
            .order_by_desc(invitation::Column::CreatedAt)
            .all(self.conn())
            .await?
            .into_iter()
            .map(invitation_from)
            .collect()
    }

    /// `false` when there is no pending invitation with this id in the organisation.
    pub async fn revoke_invitation(&self, tenant: &Tenant, id: &str) -> Result<bool, StoreError> {
        let res = invitation::Entity::delete_many()
            .filter(invitation::Column::Id.eq(id))
            .filter(invitation::Column::OrganizationId.eq(tenant.id()))
            .filter(invitation::Column::AcceptedAt.is_null())
            .exec(self.conn())
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// The invitee's e-mail if the token belongs to an open (unused, unexpired) invitation.
    pub async fn open_invitation_email(
        &self,
        token_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(invitation::Entity::find()
            .filter(invitation::Column::TokenHash.eq(token_hash))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::ExpiresAt.gt(Utc::now()))
            .one(self.conn())
            .await?
            .map(|m| m.email))
    }

    /// Turns a valid, unexpired, unused invitation into a user, once.
    /// `None` when the token matches no such invitation.
    pub async fn accept_invitation(
        &self,
        token_hash: &str,
        password_hash: String,
    ) -> Result<Option<(Organization, User)>, StoreError> {
        let now = Utc::now();
        let txn = self.conn().begin().await?;
        let Some(inv) = invitation::Entity::find()
            .filter(invitation::Column::TokenHash.eq(token_hash))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::ExpiresAt.gt(now))
            .one(&txn)
            .await?
        else {
            return Ok(None);
        };
        // Claim it first: of two concurrent acceptances only one updates the row.
        let claimed = invitation::Entity::update_many()
            .col_expr(
                invitation::Column::AcceptedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(invitation::Column::Id.eq(inv.id.clone()))
            .filter(invitation::Column::AcceptedAt.is_null())
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            return Ok(None);
        }
        let email = Email::parse(&inv.email).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let role: Role = inv.role.parse().map_err(StoreError::Corrupt)?;
        let user = new_user(&inv.organization_id, &email, role, password_hash, now)
            .insert(&txn)
            .await
            .map_err(|e| StoreError::on_unique(e, EMAIL_TAKEN))?;
        let org = organization::Entity::find_by_id(inv.organization_id.clone())
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::Corrupt("invitation without organisation".into()))?;
        txn.commit().await?;
        Ok(Some((org_from(org)?, user_from(user)?)))
    }
}

/// `text` matched literally inside a `LIKE` pattern escaped with `\`.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
