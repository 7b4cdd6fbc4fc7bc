//! Email through Amazon SES v2 (`SendEmail` with simple content: subject, text and HTML).

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use dbtree_core::auth::Email;
use dbtree_core::boundary::{MailError, Mailer};
use dbtree_core::mail::{Envelope, render};

const CHARSET: &str = "UTF-8";

/// Sends notifications with Amazon SES v2, rendered by [`dbtree_core::mail::render`].
///
/// Failures are mapped at the seam: a message or sender SES refuses for good
/// (`MessageRejected`, `MailFromDomainNotVerifiedException`, `AccountSuspendedException`,
/// `BadRequestException`) is [`MailError::Rejected`]; anything else (network, timeouts,
/// throttling, paused sending, service faults) is [`MailError::Unavailable`] with a short
/// description holding the SES error code or failure kind, never the message or its code.
#[derive(Clone, Debug)]
pub struct SesMailer {
    client: Client,
    from: Email,
}

impl SesMailer {
    /// Sends with `client`, from the verified identity `from`.
    pub fn new(client: Client, from: Email) -> Self {
        Self { client, from }
    }

    /// Builds a client from the standard AWS configuration chain (environment variables,
    /// shared config and credentials files, container or instance role), with `region` and
    /// `endpoint_url` overriding the configured ones when given.
    pub async fn from_env(
        region: Option<String>,
        from: Email,
        endpoint_url: Option<String>,
    ) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = region {
            loader = loader.region(Region::new(region));
        }
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        Self::new(Client::new(&loader.load().await), from)
    }
}

fn content(data: String) -> Result<Content, MailError> {
    Content::builder()
        .data(data)
        .charset(CHARSET)
        .build()
        .map_err(|_| MailError::Unavailable("SES: could not build the message".into()))
}

fn map_error<R>(error: SdkError<SendEmailError, R>) -> MailError {
    let unavailable = |what: &str| MailError::Unavailable(format!("SES: {what}"));
    match error {
        SdkError::ServiceError(e) => match e.err() {
            SendEmailError::MessageRejected(_)
            | SendEmailError::MailFromDomainNotVerifiedException(_)
            | SendEmailError::AccountSuspendedException(_)
            | SendEmailError::BadRequestException(_) => MailError::Rejected,
            other => unavailable(&format!(
                "service error {}",
                other.code().unwrap_or("without a code")
            )),
        },
        SdkError::TimeoutError(_) => unavailable("timed out"),
        SdkError::DispatchFailure(e) if e.is_timeout() => unavailable("timed out"),
        SdkError::DispatchFailure(e) if e.is_io() => unavailable("cannot reach the service"),
        SdkError::DispatchFailure(_) => unavailable("the request could not be sent"),
        SdkError::ResponseError(_) => unavailable("unreadable response"),
        SdkError::ConstructionFailure(_) => unavailable("the request could not be built"),
        _ => unavailable("unknown failure"),
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, envelope: &Envelope) -> Result<(), MailError> {
        let mail = render(&envelope.notification);
        let message = Message::builder()
            .subject(content(mail.subject)?)
            .body(
                Body::builder()
                    .text(content(mail.text)?)
                    .html(content(mail.html)?)
                    .build(),
            )
            .build();
        self.client
            .send_email()
            .from_email_address(self.from.as_str())
            .destination(
                Destination::builder()
                    .to_addresses(envelope.to.as_str())
                    .build(),
            )
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map(|_| ())
            .map_err(map_error)
    }
}
