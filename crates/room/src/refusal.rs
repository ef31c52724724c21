//! Why a command was refused, in terms the HTTP layer maps to a status.

/// Why [`crate::Room::apply`] refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The actor's role may not take this action (HTTP 403). `rule` names the table entry.
    #[error("forbidden by rule \"{rule}\": {reason}")]
    Forbidden {
        /// The [`crate::Rule::name`] that refused.
        rule: &'static str,
        /// Who tried what.
        reason: String,
    },
    /// The space's state does not allow it (HTTP 409): ended, stage full, not invited, …
    #[error("conflict: {0}")]
    Conflict(String),
    /// The target is not known in this role (HTTP 404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The actor was removed or banned (HTTP 403): the payload is `"removed"` or `"banned"`.
    #[error("participant {0}")]
    Gone(String),
}

impl Refusal {
    /// A conflict with this message.
    pub(crate) fn conflict(msg: impl Into<String>) -> Self {
        Refusal::Conflict(msg.into())
    }

    /// A not-found with this message.
    pub(crate) fn not_found(msg: impl Into<String>) -> Self {
        Refusal::NotFound(msg.into())
    }
}
