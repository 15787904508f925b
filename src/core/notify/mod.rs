//! Telling people (core layer): which timeline transitions are news for which Channel, the outbox
//! entries they become (written in the same status write as the transition, so none is lost or
//! doubled), when a message is due and what a delivery outcome means for it, and the message
//! itself (built-in templates, a Channel's own, the webhook payload). The notifications controller
//! sends; `notifiers/` speaks each wire format.

pub mod channel_status;
pub mod delivery;
pub mod message;
pub mod outbox;
pub mod pagerduty;
pub mod routing;
pub mod slack;
