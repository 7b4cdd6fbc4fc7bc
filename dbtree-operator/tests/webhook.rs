//! The admission webhook: its pure decision driven by AdmissionReview JSON, and one real TLS
//! round trip through the production server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod webhook {
    pub(crate) mod support;

    mod malformed;
    mod review;
    mod tls;
}
