//! Browser sessions, stored in the application database (one pool, survives restarts,
//! shared by every replica). The server's session store adapter calls these.

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::entities::session;
use crate::{Db, StoreError};

impl Db {
    /// Inserts a new session; `false` if the id is taken (the caller picks another).
    pub async fn session_create(
        &self,
        id: &str,
        data: String,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let inserted = session::Entity::insert(session::ActiveModel {
            id: Set(id.to_owned()),
            data: Set(data),
            expires_at: Set(expires_at),
        })
        .on_conflict(
            OnConflict::column(session::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(self.conn())
        .await?;
        Ok(inserted == 1)
    }

    pub async fn session_save(
        &self,
        id: &str,
        data: String,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        session::Entity::insert(session::ActiveModel {
            id: Set(id.to_owned()),
            data: Set(data),
            expires_at: Set(expires_at),
        })
        .on_conflict(
            OnConflict::column(session::Column::Id)
                .update_columns([session::Column::Data, session::Column::ExpiresAt])
                .to_owned(),
        )
        .exec_without_returning(self.conn())
        .await?;
        Ok(())
    }

    /// The session's data and expiry (unix seconds) if it has not expired at `now`.
    pub async fn session_load(
        &self,
        id: &str,
        now: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        Ok(session::Entity::find_by_id(id.to_owned())
            .filter(session::Column::ExpiresAt.gt(now))
            .one(self.conn())
            .await?
            .map(|m| (m.data, m.expires_at)))
    }

    pub async fn session_delete(&self, id: &str) -> Result<(), StoreError> {
        session::Entity::delete_by_id(id.to_owned())
            .exec(self.conn())
            .await?;
        Ok(())
    }

    /// Removes sessions expired before `now`; run by housekeeping.
    pub async fn sessions_delete_expired(&self, now: i64) -> Result<u64, StoreError> {
        Ok(session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lte(now))
            .exec(self.conn())
            .await?
            .rows_affected)
    }
}
