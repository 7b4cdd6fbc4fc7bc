//! Numbers bound into SQL columns: converted exactly or refused, never clamped.

use std::fmt;

use dbtree_core::boundary::BackendError;

/// A value too large for the SQL column it is bound into. The write fails instead of storing a
/// clamped number that would read back as something else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OutOfColumnRange {
    /// What the value is.
    pub(crate) field: &'static str,
    /// The value.
    pub(crate) value: u64,
    /// The SQL type of the column.
    pub(crate) column: &'static str,
}

impl fmt::Display for OutOfColumnRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let OutOfColumnRange {
            field,
            value,
            column,
        } = self;
        write!(f, "{field} {value} does not fit its {column} column")
    }
}

impl std::error::Error for OutOfColumnRange {}

fn refused(field: &'static str, value: impl Into<u64>, column: &'static str) -> BackendError {
    let e = OutOfColumnRange {
        field,
        value: value.into(),
        column,
    };
    BackendError::with_source(e.to_string(), e)
}

/// `value` for a `bigint` / `INTEGER` column.
///
/// # Errors
/// [`OutOfColumnRange`] (as a [`BackendError`] source) above `i64::MAX`.
pub(crate) fn bind_i64(field: &'static str, value: u64) -> Result<i64, BackendError> {
    i64::try_from(value).map_err(|_| refused(field, value, "bigint"))
}

/// `value` for an `integer` (32-bit) column.
///
/// # Errors
/// [`OutOfColumnRange`] (as a [`BackendError`] source) above `i32::MAX`.
pub(crate) fn bind_i32(field: &'static str, value: u32) -> Result<i32, BackendError> {
    i32::try_from(value).map_err(|_| refused(field, value, "integer"))
}

impl OutOfColumnRange {
    /// The out-of-range error of `err`, if that is what it is.
    #[cfg(test)]
    fn of(err: &BackendError) -> Option<&OutOfColumnRange> {
        std::error::Error::source(err).and_then(|s| s.downcast_ref())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn exact_values_bind_and_larger_ones_are_refused_not_clamped() {
        assert_eq!(bind_i64("cycle", 7).unwrap(), 7);
        assert_eq!(bind_i64("cycle", i64::MAX as u64).unwrap(), i64::MAX);
        let err = bind_i64("cycle", i64::MAX as u64 + 1).unwrap_err();
        assert_eq!(
            OutOfColumnRange::of(&err),
            Some(&OutOfColumnRange {
                field: "cycle",
                value: i64::MAX as u64 + 1,
                column: "bigint"
            })
        );
        assert_eq!(bind_i32("cpu", 2000).unwrap(), 2000);
        assert_eq!(bind_i32("cpu", i32::MAX as u32).unwrap(), i32::MAX);
        let err = bind_i32("cpu", u32::MAX).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cpu 4294967295 does not fit its integer column"
        );
        assert!(OutOfColumnRange::of(&err).is_some());
    }
}
