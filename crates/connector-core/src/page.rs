//! A stream's read as the pipeline receives it: pages of records, what fetching one can
//! go wrong with, and (under `--explain`) what became of each record. Between the read
//! toolkit (`source`), which makes pages, and the pipeline, which consumes them; neither
//! imports the other for these.

use std::collections::BTreeMap;
use std::future::Future;

use futures_util::stream::BoxStream;

use crate::http::HttpError;
use crate::ports::Cursor;

/// One page of a stream's read, as the pipeline receives it.
#[derive(Debug)]
pub struct Page<I> {
    /// The page's items, in the provider's order.
    pub items: Vec<I>,
    /// Records of the page that could not be read at all: counted as failed, and the read
    /// is partial.
    pub failed: u64,
    /// Identities of the records that failed (a hash of their bytes), so one that keeps
    /// failing is skipped after `poisonAfterPolls` polls instead of holding the stream.
    pub failures: Vec<String>,
    /// This page does not carry everything it should (a skipped record, a page limit, a
    /// guard that stopped paging): a partial read of a snapshot prunes nothing.
    pub partial: bool,
    /// Records kept whose watermark time could not be read.
    pub unreadable: Option<crate::ports::UnreadableTimes>,
    /// Why paging stopped early, when it did.
    pub partial_reason: Option<crate::ports::PartialReason>,
    /// Something suspicious about how the read ended that does not make it partial (a
    /// full page without a next link).
    pub suspect: Option<crate::ports::PartialReason>,
    /// The stream's validators once this page is durable. Incremental streams commit them
    /// with the page; a snapshot's are kept only after a complete read.
    pub cursor: Option<Cursor>,
    /// The latest record time on the page (UNIX ms), for the stream's watermark.
    pub watermark: Option<i64>,
    /// Where the read continues after this page, if it does and the stream keeps resume
    /// points (see [`crate::source::Read::resume`]).
    pub resume: Option<crate::ports::ResumePoint>,
    /// Provider-specific counters for the poll summary.
    pub extras: BTreeMap<String, u64>,
    /// What became of each record and which requests made and follow the page, only
    /// while a read is explained (`poll --explain`); empty otherwise.
    pub notes: Notes,
}

impl<I> Page<I> {
    /// A page of items with nothing else to say.
    pub fn of(items: Vec<I>) -> Self {
        Self {
            items,
            failed: 0,
            failures: Vec::new(),
            partial: false,
            partial_reason: None,
            suspect: None,
            unreadable: None,
            cursor: None,
            watermark: None,
            resume: None,
            extras: BTreeMap::new(),
            notes: Notes::default(),
        }
    }
}

/// What a stream's read yields: pages, or the server's word that nothing changed.
// One event per page, moved once: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum PageEvent<I> {
    /// A page.
    Page(Page<I>),
    /// 304 Not Modified: the stream is as it was; nothing more follows.
    NotModified,
}

/// A stream's read: pages as they arrive. It ends after the last page.
pub type Pages<'a, I> = BoxStream<'a, Result<PageEvent<I>, FetchError>>;

/// A read of one page (a whole list in one response).
pub fn single_page<'a, I: Send + 'a>(
    fetch: impl Future<Output = Result<PageEvent<I>, FetchError>> + Send + 'a,
) -> Pages<'a, I> {
    Box::pin(futures_util::stream::once(fetch))
}

/// A read of several pages: `step` fetches the page `at` describes and returns it with
/// where the read goes on, or `None` when the read is over.
pub fn paged<'a, S, I, F, Fut>(start: S, step: F) -> Pages<'a, I>
where
    S: Send + 'a,
    I: Send + 'a,
    F: FnMut(S) -> Fut + Send + 'a,
    Fut: Future<Output = Result<Option<(PageEvent<I>, S)>, FetchError>> + Send + 'a,
{
    Box::pin(futures_util::stream::try_unfold(start, step))
}

/// Why a fetch failed. Any of these fails the stream's read; what earlier pages committed
/// stays, and the next poll tries again.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The HTTP layer gave up (after its retries, or at once for a non-retryable status).
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The server handed out a page it handed out before in the same read.
    #[error("{message} ({url})")]
    Loop {
        /// The URL without its query.
        url: String,
        /// What repeated.
        message: String,
    },
    /// The API refused the read for a reason the provider knows how to explain (bad
    /// credentials, a removed endpoint), said in its words.
    #[error("{message} ({url})")]
    Refused {
        /// The URL without its query.
        url: String,
        /// What went wrong and what to do about it; never a credential.
        message: String,
    },
    /// The server answered 2xx with something that is not what the API documents.
    #[error("unexpected response from {url}: {message}")]
    Malformed {
        /// The URL without its query.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The provider was asked to read a stream it never listed: no request was made.
    #[error("this connector has no stream \"{0}\"")]
    UnknownStream(String),
}

impl FetchError {
    /// A refusal explained: `message` says why and what to change.
    pub fn refused(url: &url::Url, message: impl std::fmt::Display) -> Self {
        FetchError::Refused {
            url: crate::http::display_url(url),
            message: message.to_string(),
        }
    }

    /// The HTTP status the server answered with, when it answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Http(HttpError::Status { status, .. }) => Some(*status),
            _ => None,
        }
    }

    /// A body that did not parse as the API's documented shape.
    pub fn malformed(url: &url::Url, message: impl std::fmt::Display) -> Self {
        FetchError::Malformed {
            url: crate::http::display_url(url),
            message: message.to_string(),
        }
    }
}

/// What became of a page's records, and its requests, when explained.
#[derive(Debug, Default)]
pub struct Notes {
    /// The request that fetched the page.
    pub request: Option<String>,
    /// Each record, in page order.
    pub records: Vec<Note>,
    /// The request that would come next.
    pub next: Option<String>,
}

/// One record's fate.
#[derive(Debug)]
pub struct Note {
    /// Kept, left out or failed.
    pub outcome: Outcome,
    /// Its watermark time as read, if the stream has one.
    pub time: Option<String>,
}

/// What a record became.
#[derive(Debug)]
pub enum Outcome {
    /// The page's item at this index.
    Item(usize),
    /// Left out on purpose, under this name.
    Dropped(&'static str),
    /// Did not parse: why.
    Failed(String),
}
