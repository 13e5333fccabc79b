//! What one delivery attempt teaches the list. Decided here, without I/O; the store applies
//! the lessons in the transaction that advances its position in the attempts.

use super::is_exempt;
use crate::{bounce::Category, config::SuppressionConfig, model::status::DeliveryStatus};

/// The lesson of one attempt, for (the sender's domain, the recipient).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lesson {
    /// A permanent failure in a category that suppresses at once.
    Suppress,
    /// A permanent failure of a full mailbox: suppressed after `needed` of them in a row.
    Strike {
        needed: u32,
    },
    /// Delivered: a learned entry is lifted and the full-mailbox failures forgotten.
    Lift,
    Nothing,
}

pub fn lesson(
    rules: &SuppressionConfig,
    status: DeliveryStatus,
    category: Option<Category>,
    mail_from: &str,
    recipient: &str,
) -> Lesson {
    // Bounces (the null sender) are never suppressed, nor is postmaster@.
    if mail_from.is_empty() || is_exempt(recipient) {
        return Lesson::Nothing;
    }
    match (status, category) {
        (DeliveryStatus::Sent, _) => Lesson::Lift,
        (DeliveryStatus::Bounced, Some(c)) if rules.categories.contains(&c) => Lesson::Suppress,
        (DeliveryStatus::Bounced, Some(Category::FullMailbox)) if rules.full_mailbox_after > 0 => {
            Lesson::Strike {
                needed: rules.full_mailbox_after,
            }
        }
        // Temporary failures, a queue lifetime run out, other categories: nothing learned.
        _ => Lesson::Nothing,
    }
}
