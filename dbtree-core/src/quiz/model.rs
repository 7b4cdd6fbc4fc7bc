//! Quiz questions and the rules a new question must satisfy.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::QuizId;

/// Subject area of a quiz.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Fundamentals: transactions, keys, indexes.
    Basics,
    /// The SQL language.
    Sql,
    /// Data modelling and distributed design.
    Design,
    /// Making databases fast.
    Performance,
    /// Running databases in the cloud and on Kubernetes.
    Cloud,
}

/// How hard a quiz is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Difficulty {
    /// For beginners.
    Easy,
    /// For practitioners.
    Normal,
    /// For experts.
    Hard,
}

macro_rules! str_enum {
    ($ty:ty, $what:literal, $($variant:path => $text:literal),+) => {
        impl $ty {
            /// The stable snake_case name.
            pub const fn as_str(self) -> &'static str {
                match self { $($variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = QuizError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($variant),)+
                    _ => Err(QuizError::Unknown { field: $what, value: s.chars().take(40).collect() }),
                }
            }
        }
    };
}

str_enum!(Category, "category",
    Category::Basics => "basics", Category::Sql => "sql", Category::Design => "design",
    Category::Performance => "performance", Category::Cloud => "cloud");
str_enum!(Difficulty, "difficulty",
    Difficulty::Easy => "easy", Difficulty::Normal => "normal", Difficulty::Hard => "hard");

/// A question in the bank.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quiz {
    /// Its identifier.
    pub id: QuizId,
    /// The question and its answers.
    #[serde(flatten)]
    pub content: NewQuiz,
    /// Times it has been put on the tree.
    pub uses: u64,
    /// Retired quizzes are never put on the tree again.
    pub retired: bool,
}

/// The content of a question, validated by [`NewQuiz::validate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewQuiz {
    /// Subject area.
    pub category: Category,
    /// Difficulty.
    pub difficulty: Difficulty,
    /// The question.
    pub question: String,
    /// The possible answers, shown in this order.
    pub options: Vec<String>,
    /// Index of the correct answer in `options`.
    pub correct_option: u8,
    /// Seconds a player has to answer.
    pub time_limit_seconds: u32,
    /// Why the answer is right (shown after answering).
    #[serde(default)]
    pub explanation: String,
}

/// Why a question cannot go into the bank. Each variant names the offending field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuizError {
    /// A text field's length is out of bounds.
    #[error("{field} must be between {min} and {max} characters")]
    Length {
        /// The field.
        field: &'static str,
        /// Minimum characters.
        min: usize,
        /// Maximum characters.
        max: usize,
    },
    /// Too few or too many options.
    #[error("options must hold between {min} and {max} answers")]
    OptionCount {
        /// Minimum options.
        min: usize,
        /// Maximum options.
        max: usize,
    },
    /// Two options read the same.
    #[error("options[{index}] repeats an earlier option")]
    DuplicateOption {
        /// Index of the repeat.
        index: usize,
    },
    /// The correct option does not exist.
    #[error("correctOption must index one of the {options} options")]
    CorrectOptionOutOfRange {
        /// Number of options.
        options: usize,
    },
    /// The time limit is out of bounds.
    #[error("timeLimitSeconds must be between {min} and {max}")]
    TimeLimit {
        /// Minimum seconds.
        min: u32,
        /// Maximum seconds.
        max: u32,
    },
    /// An unknown category or difficulty name.
    #[error("unknown {field} `{value}`")]
    Unknown {
        /// The field.
        field: &'static str,
        /// What was given (truncated).
        value: String,
    },
}

impl NewQuiz {
    /// Bounds of a question's text.
    pub const QUESTION_CHARS: (usize, usize) = (10, 500);
    /// Bounds of one option's text.
    pub const OPTION_CHARS: (usize, usize) = (1, 200);
    /// Bounds of the number of options.
    pub const OPTIONS: (usize, usize) = (2, 6);
    /// Bounds of the time limit in seconds.
    pub const TIME_LIMIT_SECONDS: (u32, u32) = (10, 30);
    /// Longest explanation.
    pub const EXPLANATION_CHARS: usize = 1000;

    /// Trims every text and checks every bound.
    ///
    /// # Errors
    /// The first [`QuizError`] found, checking question, options, correct option, time limit,
    /// explanation in that order.
    pub fn validate(mut self) -> Result<NewQuiz, QuizError> {
        let within = |s: &str, (min, max): (usize, usize)| (min..=max).contains(&s.chars().count());
        self.question = self.question.trim().to_owned();
        if !within(&self.question, Self::QUESTION_CHARS) {
            let (min, max) = Self::QUESTION_CHARS;
            return Err(QuizError::Length {
                field: "question",
                min,
                max,
            });
        }
        let (min, max) = Self::OPTIONS;
        if !(min..=max).contains(&self.options.len()) {
            return Err(QuizError::OptionCount { min, max });
        }
        for option in &mut self.options {
            *option = option.trim().to_owned();
            if !within(option, Self::OPTION_CHARS) {
                let (min, max) = Self::OPTION_CHARS;
                return Err(QuizError::Length {
                    field: "options",
                    min,
                    max,
                });
            }
        }
        for (index, option) in self.options.iter().enumerate() {
            let lower = option.to_lowercase();
            if self.options[..index]
                .iter()
                .any(|o| o.to_lowercase() == lower)
            {
                return Err(QuizError::DuplicateOption { index });
            }
        }
        if usize::from(self.correct_option) >= self.options.len() {
            return Err(QuizError::CorrectOptionOutOfRange {
                options: self.options.len(),
            });
        }
        let (min, max) = Self::TIME_LIMIT_SECONDS;
        if !(min..=max).contains(&self.time_limit_seconds) {
            return Err(QuizError::TimeLimit { min, max });
        }
        self.explanation = self.explanation.trim().to_owned();
        if self.explanation.chars().count() > Self::EXPLANATION_CHARS {
            return Err(QuizError::Length {
                field: "explanation",
                min: 0,
                max: Self::EXPLANATION_CHARS,
            });
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiz() -> NewQuiz {
        NewQuiz {
            category: Category::Sql,
            difficulty: Difficulty::Easy,
            question: "  Which clause filters groups?  ".into(),
            options: vec!["WHERE".into(), " HAVING ".into(), "ORDER BY".into()],
            correct_option: 1,
            time_limit_seconds: 15,
            explanation: String::new(),
        }
    }

    #[test]
    fn a_good_quiz_is_trimmed() {
        let q = quiz().validate().unwrap();
        assert_eq!(q.question, "Which clause filters groups?");
        assert_eq!(q.options[1], "HAVING");
    }

    #[test]
    fn each_bound_is_enforced() {
        let cases: Vec<(NewQuiz, QuizError)> = vec![
            (
                NewQuiz {
                    question: "short?".into(),
                    ..quiz()
                },
                QuizError::Length {
                    field: "question",
                    min: 10,
                    max: 500,
                },
            ),
            (
                NewQuiz {
                    options: vec!["only".into()],
                    ..quiz()
                },
                QuizError::OptionCount { min: 2, max: 6 },
            ),
            (
                NewQuiz {
                    options: vec!["a".into(); 7],
                    ..quiz()
                },
                QuizError::OptionCount { min: 2, max: 6 },
            ),
            (
                NewQuiz {
                    options: vec!["a".into(), "  ".into()],
                    ..quiz()
                },
                QuizError::Length {
                    field: "options",
                    min: 1,
                    max: 200,
                },
            ),
            (
                NewQuiz {
                    options: vec!["Yes".into(), "yes".into()],
                    ..quiz()
                },
                QuizError::DuplicateOption { index: 1 },
            ),
            (
                NewQuiz {
                    correct_option: 3,
                    ..quiz()
                },
                QuizError::CorrectOptionOutOfRange { options: 3 },
            ),
            (
                NewQuiz {
                    time_limit_seconds: 9,
                    ..quiz()
                },
                QuizError::TimeLimit { min: 10, max: 30 },
            ),
            (
                NewQuiz {
                    time_limit_seconds: 31,
                    ..quiz()
                },
                QuizError::TimeLimit { min: 10, max: 30 },
            ),
            (
                NewQuiz {
                    explanation: "x".repeat(1001),
                    ..quiz()
                },
                QuizError::Length {
                    field: "explanation",
                    min: 0,
                    max: 1000,
                },
            ),
        ];
        for (q, want) in cases {
            assert_eq!(q.validate(), Err(want.clone()), "{want}");
        }
    }

    #[test]
    fn names_parse_back() {
        assert_eq!("performance".parse::<Category>(), Ok(Category::Performance));
        assert_eq!("hard".parse::<Difficulty>(), Ok(Difficulty::Hard));
        assert!("expert".parse::<Difficulty>().is_err());
    }
}
