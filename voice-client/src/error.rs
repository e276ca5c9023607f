//! Errors of voice-client.

/// Why a configuration was refused.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A probability is outside 0.0..=1.0 (or not a number).
    #[error("`{field}` must be a probability in 0.0..=1.0, got {value}")]
    NotAProbability {
        /// The field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
}
