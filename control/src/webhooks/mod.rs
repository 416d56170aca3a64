//! Notifications Intune lacks: per-tenant webhooks on new and decided elevation requests,
//! signed as Standard Webhooks (or a Teams Workflows Adaptive Card), sent from a transactional
//! outbox with retries. [`send`] holds the pure pieces (signatures, URL and address checks,
//! one HTTP attempt); [`outbox`] what is stored and the delivery loop.

pub mod outbox;
pub mod send;

pub use outbox::{Delivery, Webhook, WebhookEvent, WebhookFormat};
