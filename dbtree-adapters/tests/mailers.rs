#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The console mailer's log lines, and the SES mailer against a local fake of the SES v2 API
//! through the real AWS SDK (request shape, SigV4 signing, error mapping).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_sdk_sesv2::config::{Credentials, Region};
use dbtree_adapters::console::ConsoleMailer;
use dbtree_adapters::ses::SesMailer;
use dbtree_core::auth::{Email, SignInCode};
use dbtree_core::boundary::{MailError, Mailer};
use dbtree_core::ids::UserId;
use dbtree_core::lemons::Lemons;
use dbtree_core::mail::{Envelope, Notification};
use dbtree_core::support::{SupportCategory, SupportInquiry};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Server};
use serde_json::Value;
use tokio::task::JoinHandle;

const SEND_EMAIL_PATH: &str = "/v2/email/outbound-emails";
const USER_TEXT: &str = "<script>alert('x')</script>\r\nSecond line & more";

fn email(text: &str) -> Email {
    Email::parse(text).unwrap()
}

fn sign_in_code() -> Envelope {
    Envelope {
        to: email("ann@example.org"),
        notification: Notification::SignInCode {
            code: SignInCode::parse("042042").unwrap(),
            valid_minutes: 10,
        },
    }
}

fn support_inquiry() -> Envelope {
    Envelope {
        to: email("admin@example.org"),
        notification: Notification::SupportInquiry {
            from: email("ann@example.org"),
            user: UserId::from_random_bytes([1; 16]),
            inquiry: SupportInquiry::new(
                SupportCategory::Bug,
                "Help\r\nBcc: victim@example.org",
                USER_TEXT,
            )
            .unwrap(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Console mailer

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// Collects everything logged at `level` or above on this thread while the guard lives.
    fn install(&self, level: tracing::Level) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(level)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

#[tokio::test]
async fn console_mailer_logs_the_code_in_one_line_and_never_a_body() {
    let log = Captured::default();
    let _guard = log.install(tracing::Level::TRACE);
    let mailer = ConsoleMailer;

    mailer.send(&sign_in_code()).await.unwrap();
    mailer.send(&support_inquiry()).await.unwrap();
    mailer
        .send(&Envelope {
            to: email("bob@example.org"),
            notification: Notification::Welcome {
                bonus: Lemons::new(5),
            },
        })
        .await
        .unwrap();

    let text = log.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "one line per message: {text}");
    let code_lines: Vec<&&str> = lines.iter().filter(|l| l.contains("042042")).collect();
    assert_eq!(code_lines.len(), 1, "{text}");
    let line = code_lines[0];
    assert!(
        line.contains(" INFO ") && line.contains("dbtree::mail"),
        "{line}"
    );
    assert!(
        line.ends_with("sign-in code for ann@example.org: 042042"),
        "{line}"
    );

    assert!(lines[1].contains(" INFO ") && lines[1].contains("admin@example.org"));
    assert!(lines[1].contains("[dbtree support] bug - Help  Bcc: victim@example.org"));
    assert!(lines[2].contains("bob@example.org") && lines[2].contains("Welcome to dbtree"));
    // Bodies are never logged.
    assert!(
        !text.contains("script") && !text.contains("Second line"),
        "{text}"
    );
    assert!(!text.contains("lemons are waiting"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// SES mailer against a fake SES v2 endpoint

/// One request the fake endpoint received.
#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    path: String,
    /// Lower-case names.
    headers: HashMap<String, String>,
    body: Value,
}

/// How the fake endpoint answers every request.
#[derive(Clone)]
struct Reply {
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static str,
}

impl Reply {
    fn sent() -> Self {
        Self {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: r#"{"MessageId":"test-1"}"#,
        }
    }
}

struct FakeSes {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl FakeSes {
    async fn start(reply: Reply) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let app = poem::endpoint::make(move |req: Request| {
            let log = Arc::clone(&log);
            let reply = reply.clone();
            async move {
                let method = req.method().to_string();
                let path = req.uri().path().to_owned();
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                    .collect();
                let bytes = req.into_body().into_vec().await.unwrap();
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                log.lock().unwrap().push(Recorded {
                    method,
                    path,
                    headers,
                    body,
                });
                let mut response = Response::builder()
                    .status(reply.status)
                    .content_type("application/json");
                for (name, value) in reply.headers {
                    response = response.header(name, value);
                }
                response.body(reply.body)
            }
        });
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let server = tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Self {
            addr,
            requests,
            server,
        }
    }

    fn mailer(&self) -> SesMailer {
        let config = aws_sdk_sesv2::Config::builder()
            .endpoint_url(format!("http://{}", self.addr))
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .retry_config(RetryConfig::standard().with_initial_backoff(Duration::from_millis(1)))
            .behavior_version_latest()
            .build();
        SesMailer::new(
            aws_sdk_sesv2::Client::from_conf(config),
            email("noreply@dbtree.example.org"),
        )
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeSes {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn text_at<'a>(body: &'a Value, pointer: &str) -> &'a str {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {body}"))
}

/// Checks the shape every SendEmail request must have, and returns its simple message.
fn assert_send_email(request: &Recorded, to: &str) -> Value {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, SEND_EMAIL_PATH);
    let authorization = &request.headers["authorization"];
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKID/"),
        "{authorization}"
    );
    assert!(
        authorization.contains("/eu-west-1/ses/aws4_request"),
        "{authorization}"
    );
    assert!(request.headers.contains_key("x-amz-date"));
    let body = &request.body;
    assert_eq!(
        text_at(body, "/FromEmailAddress"),
        "noreply@dbtree.example.org"
    );
    assert_eq!(body["Destination"]["ToAddresses"], serde_json::json!([to]));
    let simple = body.pointer("/Content/Simple").unwrap().clone();
    for part in ["/Subject", "/Body/Text", "/Body/Html"] {
        assert_eq!(text_at(&simple, &format!("{part}/Charset")), "UTF-8");
    }
    let subject = text_at(&simple, "/Subject/Data");
    assert!(
        !subject.contains('\r') && !subject.contains('\n'),
        "{subject}"
    );
    simple
}

#[tokio::test]
async fn ses_mailer_sends_a_signed_simple_send_email_request() {
    let ses = FakeSes::start(Reply::sent()).await;
    let mailer = ses.mailer();
    let log = Captured::default();
    let guard = log.install(tracing::Level::TRACE);

    mailer.send(&support_inquiry()).await.unwrap();
    mailer.send(&sign_in_code()).await.unwrap();
    drop(guard);

    let requests = ses.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");

    let inquiry = assert_send_email(&requests[0], "admin@example.org");
    assert_eq!(
        text_at(&inquiry, "/Subject/Data"),
        "[dbtree support] bug - Help  Bcc: victim@example.org"
    );
    let html = text_at(&inquiry, "/Body/Html/Data");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    let text = text_at(&inquiry, "/Body/Text/Data");
    assert!(text.contains(USER_TEXT.trim()), "{text}");
    assert!(text.contains("From ann@example.org"), "{text}");

    let code = assert_send_email(&requests[1], "ann@example.org");
    assert!(text_at(&code, "/Subject/Data").contains("042042"));
    assert!(text_at(&code, "/Body/Text/Data").contains("Your sign-in code is 042042."));
    assert!(text_at(&code, "/Body/Html/Data").contains("042042"));

    // Neither the adapter nor the SDK (at any level) logs a body or a code.
    let logged = log.text();
    assert!(!logged.contains("042042"), "{logged}");
    assert!(!logged.contains("Second line"), "{logged}");
}

#[tokio::test]
async fn a_message_ses_rejects_is_rejected() {
    let ses = FakeSes::start(Reply {
        status: StatusCode::BAD_REQUEST,
        headers: vec![("x-amzn-ErrorType", "MessageRejected")],
        body: r#"{"message":"Email address is not verified."}"#,
    })
    .await;

    let error = ses.mailer().send(&sign_in_code()).await.unwrap_err();

    assert!(matches!(error, MailError::Rejected), "{error:?}");
    assert_eq!(ses.requests().len(), 1, "a rejection is not retried");
}

#[tokio::test]
async fn a_failing_service_is_unavailable_without_the_message_in_the_error() {
    let ses = FakeSes::start(Reply {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        headers: vec![("x-amzn-ErrorType", "InternalFailure")],
        body: r#"{"message":"We encountered an internal error."}"#,
    })
    .await;

    let error = ses.mailer().send(&sign_in_code()).await.unwrap_err();

    let MailError::Unavailable(description) = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert!(description.starts_with("SES: "), "{description}");
    assert!(!error.to_string().contains("042042"), "{error}");
    assert!(!ses.requests().is_empty());
}

#[tokio::test]
async fn throttling_is_unavailable() {
    let ses = FakeSes::start(Reply {
        status: StatusCode::TOO_MANY_REQUESTS,
        headers: vec![("x-amzn-ErrorType", "TooManyRequestsException")],
        body: r#"{"message":"Too many requests."}"#,
    })
    .await;

    let error = ses.mailer().send(&sign_in_code()).await.unwrap_err();

    assert!(
        matches!(&error, MailError::Unavailable(d) if d.contains("TooManyRequestsException")),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable() {
    // A port that was free a moment ago and that nothing listens on now.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = aws_sdk_sesv2::Config::builder()
        .endpoint_url(format!("http://{addr}"))
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .behavior_version_latest()
        .build();
    let mailer = SesMailer::new(
        aws_sdk_sesv2::Client::from_conf(config),
        email("noreply@dbtree.example.org"),
    );

    let error = mailer.send(&sign_in_code()).await.unwrap_err();

    assert!(matches!(error, MailError::Unavailable(_)), "{error:?}");
}
