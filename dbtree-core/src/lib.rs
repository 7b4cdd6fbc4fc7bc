//! # dbtree-core
//!
//! The rules of dbtree — a lemon-gated (credit-gated) database platform — as a library.
//!
//! Users earn **lemons** by answering quizzes on a shared ten-lemon tree and winning a five-second
//! click race; they spend lemons on small database instances with a creation cost and an hourly
//! cost. This crate holds every rule of that economy as pure, synchronous functions that take
//! the current time and randomness as arguments, plus the **boundary traits** an application
//! implements to plug in its storage, locks, mail and cluster, and the **use cases** that tie the
//! two together.
//!
//! | layer | modules | does IO? |
//! |---|---|---|
//! | rules and value types | [`lemons`], [`ledger`], [`streak`], [`tree`], [`quiz`], [`harvest`], [`instance`], [`billing`], [`auth`], [`mail`], [`stats`], [`support`], [`policy`] | never |
//! | boundary traits | [`boundary`] | declares it; adapters implement it |
//! | use cases | [`service`] | only through boundary traits |
//!
//! Every number (welcome bonus, reward, cap, limits, windows, prices) is a field of
//! [`policy::Policy`]; `Policy::default()` holds the published values.
//!
//! ## Example: price a preset, then play a harvest
//!
//! The in-memory adapters of `dbtree-adapters` (feature `memory`) implement every boundary
//! trait, so the whole flow runs without a server:
//!
//! ```
//! use std::sync::Arc;
//! use dbtree_core::harvest::Click;
//! use dbtree_core::instance::{Engine, InstanceSpec, PresetSize, price};
//! use dbtree_core::tree::Position;
//! use dbtree_adapters::memory::Sandbox;
//!
//! // Pricing is a pure function.
//! let small_pg = InstanceSpec::Preset { engine: Engine::Postgresql, size: PresetSize::Small };
//! assert_eq!(price(&small_pg).creation_cost.get(), 10);
//! assert_eq!(price(&small_pg).hourly_cost.get(), 2);
//! assert_eq!(price(&small_pg).monthly_cost.get(), 1440);
//!
//! # futures_executor::block_on(async {
//! // A sandbox: memory store, manual clock, seeded randomness, recording mailer.
//! let sandbox = Sandbox::new();
//! let app = sandbox.app();
//! app.prepare().await.unwrap(); // seeds the quiz bank, plants ten ripe lemons
//!
//! // Sign in with the code from the (recorded) email: 15 welcome lemons.
//! app.accounts.request_code("ann@example.org", None).await.unwrap();
//! let code = sandbox.mailer.last_code_for("ann@example.org").unwrap();
//! let signed_in = app.accounts.verify("ann@example.org", &code, None).await.unwrap();
//! assert_eq!(signed_in.profile.balance.get(), 15);
//! let ann = app.accounts.authenticate(&signed_in.token.expose()).await.unwrap().user;
//!
//! // Answer the quiz of lemon 0 correctly, then click the circle where it is 1.2 s later.
//! let position = Position::new(0).unwrap();
//! let quiz = app.tree.start_quiz(&ann, position).await.unwrap();
//! let correct = sandbox.correct_option(quiz.attempt).await;
//! let answer = app.tree.answer(ann.id, quiz.attempt, i64::from(correct)).await.unwrap();
//! let challenge = answer.challenge.unwrap();
//! let (x, y) = challenge.centre_at(1200.0);
//! sandbox.clock.advance_ms(1300);
//! let receipt = app.tree
//!     .harvest(ann.id, quiz.attempt, &Click { click_offset_ms: 1200, x, y })
//!     .await
//!     .unwrap();
//! assert_eq!(receipt.reward.get(), 3);
//! assert_eq!(receipt.balance_after.get(), 18);
//! # });
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod billing;
pub mod boundary;
pub mod harvest;
mod hex;
pub mod ids;
pub mod instance;
pub mod ledger;
pub mod lemons;
pub mod mail;
pub mod policy;
pub mod quiz;
pub mod service;
pub mod stats;
pub mod streak;
pub mod support;
pub mod tree;
