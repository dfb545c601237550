#![doc = include_str!("../README.md")]

pub mod catalog;

pub use catalog::catalog;
use connector_core::config::{FieldError, References};
use connector_core::pipeline::{CreateError, Pages, StreamSpec};
use connector_core::spec::catalog::Expanded;
use connector_core::spec::{ReadSpec, SpecReader};
use connector_core::{
    ConnectorContext, Cursor, Description, Factories, ItemError, Provider, Record,
};
use serde_json::{Map, Value};

/// `providerConfig` of an `HTTP_JSON` connector: the core's read description, as is.
pub type HttpJsonConfig = ReadSpec;

/// The `HTTP_JSON` provider: the core's declarative read, configured by JSON alone.
pub struct HttpJsonProvider {
    reader: SpecReader,
    streams: [StreamSpec; 1],
}

impl Provider for HttpJsonProvider {
    const TYPE: &'static str = "HTTP_JSON";
    type Config = ReadSpec;

    fn check(config: &ReadSpec) -> Vec<FieldError> {
        config.problems()
    }

    fn expand(
        settings: &Map<String, Value>,
        references: &References,
    ) -> Option<Result<Expanded, Vec<FieldError>>> {
        catalog().expand(settings, references)
    }

    fn new(config: ReadSpec, common: &ConnectorContext) -> Result<Self, CreateError> {
        let reader = SpecReader::new(config, common)?;
        Ok(Self {
            streams: [reader.stream()],
            reader,
        })
    }

    fn source(&self) -> &str {
        &self.reader.spec().source
    }

    fn streams(&self) -> &[StreamSpec] {
        &self.streams
    }

    fn pages<'a>(&'a self, stream: &'a StreamSpec, cursor: &'a Cursor) -> Pages<'a, Record> {
        self.reader.pages(stream, cursor)
    }

    fn parents<'a>(&'a self, _stream: &'a StreamSpec, cursor: &'a Cursor) -> Pages<'a, Record> {
        self.reader.parents(cursor)
    }

    fn describe<'a>(
        &'a self,
        _: &StreamSpec,
        record: &'a Record,
    ) -> Result<Description<'a>, ItemError> {
        self.reader.describe(record)
    }
}

/// The connector types this crate's binary runs.
pub fn factories() -> Factories {
    let mut factories = Factories::new();
    factories.register::<HttpJsonProvider>();
    factories.with_catalog(HttpJsonProvider::TYPE, catalog());
    factories
}
