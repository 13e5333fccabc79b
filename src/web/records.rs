//! Where the pages read their records: this host's SQLite store (`mailtrail run`), or the
//! fleet's PostgreSQL database (`mailtrail dashboard`). The lists and the message page ask
//! here; pages only this host has (raw log, statistics, metrics) read the store directly.

use super::{WebError, WebState};
use crate::store::{
    MessageCount, MessageNotice, MessageSummary, RecipientDelivery, Store, StoredMessage,
    SummaryFilter, fleet::FleetReader,
};
use std::sync::Mutex;

pub(super) enum Records {
    Local(Mutex<Store>),
    Fleet(FleetReader),
}

/// A message as the pages address it: its id, and its host on the dashboard.
#[derive(Clone, Debug)]
pub(super) struct MessageKey {
    pub host: Option<String>,
    pub id: i64,
}

impl WebState {
    pub(super) fn fleet_reader(&self) -> Option<&FleetReader> {
        match &self.inner.records {
            Records::Fleet(reader) => Some(reader),
            Records::Local(_) => None,
        }
    }

    /// A page of a list and how many match (counted up to `cap`).
    pub(super) async fn summaries(
        &self,
        filter: SummaryFilter,
        cap: u64,
    ) -> Result<(Vec<MessageSummary>, MessageCount), WebError> {
        match self.fleet_reader() {
            // Two connections: the page and its count at once.
            Some(fleet) => Ok(tokio::try_join!(
                fleet.message_summaries(&filter),
                fleet.count_summaries_upto(&filter, cap),
            )?),
            None => {
                self.read(move |s| {
                    Ok((
                        s.message_summaries(&filter)?,
                        s.count_summaries_upto(&filter, cap)?,
                    ))
                })
                .await
            }
        }
    }

    /// The rows alone, for downloads (no pager, so no count).
    pub(super) async fn summary_rows(
        &self,
        filter: SummaryFilter,
    ) -> Result<Vec<MessageSummary>, WebError> {
        match self.fleet_reader() {
            Some(fleet) => Ok(fleet.message_summaries(&filter).await?),
            None => self.read(move |s| s.message_summaries(&filter)).await,
        }
    }

    /// One message; on the dashboard only with its host.
    pub(super) async fn stored_message(
        &self,
        key: &MessageKey,
    ) -> Result<Option<StoredMessage>, WebError> {
        let id = key.id;
        match (self.fleet_reader(), &key.host) {
            (Some(fleet), Some(host)) => Ok(fleet.message(host, id).await?),
            (Some(_), None) => Ok(None),
            (None, _) => self.read(move |s| s.message(id)).await,
        }
    }

    /// The message's recipients with their attempts, and the notices decided for it.
    pub(super) async fn delivery_story(
        &self,
        key: &MessageKey,
    ) -> Result<(Vec<RecipientDelivery>, Vec<MessageNotice>), WebError> {
        let id = key.id;
        match (self.fleet_reader(), &key.host) {
            (Some(fleet), Some(host)) => Ok((
                fleet.deliveries(host, id).await?,
                fleet.message_notices(host, id).await?,
            )),
            (Some(_), None) => Err(WebError::NotFound),
            (None, _) => {
                self.read(move |s| Ok((s.deliveries(id)?, s.message_notices(id)?)))
                    .await
            }
        }
    }

    /// The row that handed the message over to `queue_id` on the same host, if any.
    pub(super) async fn handed_over_to(
        &self,
        host: Option<String>,
        queue_id: String,
        arrived_at: i64,
    ) -> Result<Option<StoredMessage>, WebError> {
        match (self.fleet_reader(), host) {
            (Some(fleet), Some(host)) => {
                Ok(fleet.handed_over_to(&host, &queue_id, arrived_at).await?)
            }
            (Some(_), None) => Ok(None),
            (None, _) => {
                self.read(move |s| s.handed_over_to(&queue_id, arrived_at))
                    .await
            }
        }
    }
}
