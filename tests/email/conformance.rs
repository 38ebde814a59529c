//! The transport conformance suite (`corekit::email::conformance`) on every transport:
//! `email_suite!` makes one test per check.

use corekit::email::BoxFuture;
use corekit::email::Email;
use corekit::email::conformance::Delivered;

/// How a test finds what its transport delivered: the suite's inbox, boxed so `setup()` can
/// return it.
pub type Inbox = Box<dyn Fn(Email, Option<String>) -> BoxFuture<'static, Delivered> + Send + Sync>;

/// One `#[tokio::test]` per check of `corekit::email::conformance`, on the transport and inbox
/// that `setup()` (an async fn in scope returning `(Arc<dyn Transport>, Inbox)`) returns.
#[macro_export]
macro_rules! email_suite {
    () => {
        $crate::email_suite!(@delivers
            a_plain_email_arrives,
            every_field_arrives_intact,
            concurrent_sends_all_arrive,
            a_large_attachment_arrives_byte_exact,
            the_mailer_fills_in_the_sender
        );
        $crate::email_suite!(@transport ping_answers, bad_input_never_reaches_the_transport);
    };
    (@delivers $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (transport, inbox) = setup().await;
                corekit::email::conformance::$check(transport, &*inbox).await
            }
        )*
    };
    (@transport $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (transport, _inbox) = setup().await;
                corekit::email::conformance::$check(transport).await
            }
        )*
    };
}
