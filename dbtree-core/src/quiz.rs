//! Quizzes and quiz attempts: the bank's questions, their validation, answer deadlines and the
//! one-quiz-per-user lock's lifetime.

mod attempt;
mod bank;
mod model;

pub use attempt::{AnswerRecord, Attempt, QuizPolicy, answered_on_time, deadline};
pub use bank::{BankError, shipped_bank};
pub use model::{Category, Difficulty, NewQuiz, Quiz, QuizError};
