//! Use cases over the memory adapters: the whole story, each area's edges, and concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod services {
    pub(crate) mod helpers;

    mod billing;
    mod concurrency;
    mod harvest;
    mod instances;
    mod sign_in;
    mod story;
}
