//! The factory registry (connector type → how to build one) and the validated set of
//! configured connectors.
//!
//! Registration is one explicit line per provider, in the binary that wants it:
//! `factories.register::<NoaaProvider>()`. No linker tricks: what a binary can run is
//! what its `main` lists.

use crate::context::ConnectorContext;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::{
    self, ConfigErrors, ConfigSource, ConnectorConfig, Environment, FieldError, PathSegment,
    ProviderCatalog, ProviderSettings, References, parse_provider, schema_of,
};
use crate::context::Backends;
use crate::pipeline::{CreateError, PollingConnector, Provider, UniversalPollingConnector};
use crate::spec::catalog::Catalog;

/// Builds connectors of one type.
pub trait ConnectorFactory: Send + Sync {
    /// The type name it builds.
    fn connector_type(&self) -> &'static str;
    /// Parses `providerConfig` into the provider's typed settings; paths are relative to it.
    fn parse(
        &self,
        provider_config: Map<String, Value>,
        references: &References,
    ) -> Result<ProviderSettings, Vec<FieldError>>;
    /// JSON Schema of `providerConfig`.
    fn provider_schema(&self) -> Value;
    /// Builds a connector from a validated config.
    fn create(
        &self,
        config: Arc<ConnectorConfig>,
        backends: Backends,
    ) -> Result<Box<dyn PollingConnector>, CreateError>;
}

/// The factory of any [`Provider`]: parsing through its typed config and schema, creation
/// through the generic pipeline.
pub struct ProviderFactory<P>(PhantomData<fn() -> P>);

impl<P: Provider> Default for ProviderFactory<P> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<P: Provider> ProviderFactory<P> {
    /// The typed config, the settings it was parsed from (expanded when they name a
    /// catalog entry) and where referenced or secret values are in them.
    fn parse_typed(
        provider_config: Map<String, Value>,
        references: &References,
    ) -> Result<(P::Config, Value, References), Vec<FieldError>> {
        let Some(expanded) = P::expand(&provider_config, references) else {
            let schema = schema_of::<P::Config>();
            let (typed, resolved) =
                parse_provider::<P::Config>(provider_config, &schema, references, &P::check)?;
            return Ok((typed, resolved, references.clone()));
        };
        let expanded = expanded?;
        let schema = schema_of::<P::Config>();
        let (entry, references) = (expanded.entry, expanded.references);
        parse_provider::<P::Config>(expanded.settings, &schema, &references, &P::check)
            .map(|(typed, resolved)| (typed, resolved, references))
            .map_err(|errors| {
                // A field the user did not write comes from the entry: say which.
                errors
                    .into_iter()
                    .map(|mut e| {
                        let written = matches!(e.path.first(),
                            Some(PathSegment::Key(k)) if provider_config.contains_key(k));
                        if !written {
                            e.message = format!(
                                "{} (in catalog entry {entry} as expanded: `catalog show {entry}` prints it)",
                                e.message
                            );
                        }
                        e
                    })
                    .collect()
            })
    }
}

impl<P: Provider> ConnectorFactory for ProviderFactory<P> {
    fn connector_type(&self) -> &'static str {
        P::TYPE
    }

    fn parse(
        &self,
        provider_config: Map<String, Value>,
        references: &References,
    ) -> Result<ProviderSettings, Vec<FieldError>> {
        let (typed, resolved, references) = Self::parse_typed(provider_config, references)?;
        Ok(ProviderSettings::typed(typed, &resolved).with_references(&references, &resolved))
    }

    fn provider_schema(&self) -> Value {
        schema_of::<P::Config>()
    }

    fn create(
        &self,
        config: Arc<ConnectorConfig>,
        backends: Backends,
    ) -> Result<Box<dyn PollingConnector>, CreateError> {
        let typed = typed_config::<P>(&config)?;
        let connector = ConnectorContext::new(config.clone(), backends.context.clone());
        let provider = P::new(typed, &connector)?;
        Ok(Box::new(UniversalPollingConnector::new(
            provider, config, backends,
        )))
    }
}

/// The provider's typed settings of `config`: parsed at load, or now when a program gave
/// them as JSON.
pub fn typed_config<P: Provider>(config: &ConnectorConfig) -> Result<P::Config, CreateError> {
    let settings = &config.provider_config;
    match (settings.get::<P::Config>(), settings.unparsed()) {
        (Some(typed), _) => Ok(typed.clone()),
        (None, Some(raw)) => ProviderFactory::<P>::parse_typed(raw.clone(), &References::new())
            .map(|(typed, ..)| typed)
            .map_err(|errors| {
                let list: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{}: {}", config::render_field_path(&e.path), e.message))
                    .collect();
                CreateError(format!("invalid providerConfig: {}", list.join("; ")))
            }),
        (None, None) => Err(CreateError(format!(
            "providerConfig of \"{}\" was parsed for another connector type",
            config.name
        ))),
    }
}

/// Connector types this binary can build, and the types of the product it belongs to.
#[derive(Clone, Default)]
pub struct Factories {
    map: BTreeMap<&'static str, Arc<dyn ConnectorFactory>>,
    /// Types of the product, whether or not this binary includes them (the binaries say
    /// which: the core names no provider). A config naming one this binary was not built
    /// with is skipped (another binary runs it); any other unknown type is a mistake.
    product: Vec<&'static str>,
    /// The ready read descriptions this binary runs, and the type that expands them
    /// (`HTTP_JSON`).
    catalog: Option<(&'static str, Arc<Catalog>)>,
}

impl Factories {
    /// No types yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a factory under `connector_type` (a later registration replaces it).
    pub fn register_connector(
        &mut self,
        connector_type: &'static str,
        factory: impl ConnectorFactory + 'static,
    ) -> &mut Self {
        self.map.insert(connector_type, Arc::new(factory));
        self
    }

    /// Declares the product's types (see the field's docs); the registered ones count
    /// anyway.
    pub fn with_product_types(mut self, types: &[&'static str]) -> Self {
        self.product = types.to_vec();
        self
    }

    /// Declares the catalog of ready sources this binary runs, expanded by the provider
    /// of `connector_type`.
    pub fn with_catalog(
        &mut self,
        connector_type: &'static str,
        catalog: Arc<Catalog>,
    ) -> &mut Self {
        self.catalog = Some((connector_type, catalog));
        self
    }

    /// The catalog of ready sources, when this binary runs one.
    pub fn catalog(&self) -> Option<&Catalog> {
        self.catalog.as_ref().map(|(_, c)| c.as_ref())
    }

    /// The product's types, registered or not.
    pub fn product_types(&self) -> Vec<&'static str> {
        let mut all = self.product.clone();
        for t in self.map.keys() {
            if !all.contains(t) {
                all.push(t);
            }
        }
        all.sort_unstable();
        all
    }

    /// The factories of one provider: what a provider crate's binary runs.
    pub fn of<P: Provider>() -> Self {
        let mut factories = Self::new();
        factories.register::<P>();
        factories
    }

    /// Registers a provider through the generic pipeline.
    pub fn register<P: Provider>(&mut self) -> &mut Self {
        self.register_connector(P::TYPE, ProviderFactory::<P>::default())
    }

    /// The factory for a type.
    pub fn get(&self, connector_type: &str) -> Option<&Arc<dyn ConnectorFactory>> {
        self.map.get(connector_type)
    }

    /// Registered type names, sorted.
    pub fn types(&self) -> Vec<&'static str> {
        self.map.keys().copied().collect()
    }

    /// Builds a connector, or says which types this binary knows.
    pub fn create(
        &self,
        config: Arc<ConnectorConfig>,
        backends: Backends,
    ) -> Result<Box<dyn PollingConnector>, CreateError> {
        match self.map.get(config.connector_type.as_str()) {
            Some(f) => f.create(config, backends),
            None => Err(CreateError(format!(
                "unknown connector type \"{}\"; registered types: {}",
                config.connector_type,
                self.types().join(", ")
            ))),
        }
    }

    /// JSON Schema of `connectors.json` with every registered provider's settings.
    pub fn json_schema(&self) -> Value {
        let providers: Vec<(&str, Value)> = self
            .map
            .iter()
            .map(|(t, f)| match &self.catalog {
                Some((ty, catalog)) if ty == t => (*t, catalog.schema_around(f.provider_schema())),
                _ => (*t, f.provider_schema()),
            })
            .collect();
        config::json_schema(&providers, &self.product)
    }
}

impl ProviderCatalog for Factories {
    fn parse(
        &self,
        connector_type: &str,
        settings: Map<String, Value>,
        references: &References,
    ) -> Option<Result<ProviderSettings, Vec<FieldError>>> {
        self.map
            .get(connector_type)
            .map(|f| f.parse(settings, references))
    }

    fn types(&self) -> Vec<&'static str> {
        Factories::types(self)
    }

    fn product_types(&self) -> &[&'static str] {
        &self.product
    }
}

/// The validated connector configuration: every entry passed every check.
#[derive(Debug, Clone, Default)]
pub struct ConnectorRegistry {
    connectors: Vec<Arc<ConnectorConfig>>,
}

impl ConnectorRegistry {
    /// Loads and validates, reporting every mistake at once.
    pub fn load(
        source: &ConfigSource,
        env: &Environment,
        factories: &Factories,
    ) -> Result<Self, ConfigErrors> {
        Self::load_for(source, env, factories, None)
    }

    /// Loads for a process that runs only `only` (see [`config::load_for`]).
    pub fn load_for(
        source: &ConfigSource,
        env: &Environment,
        factories: &Factories,
        only: Option<&str>,
    ) -> Result<Self, ConfigErrors> {
        let connectors = config::load_for(source, env, factories, only)?;
        Ok(Self {
            connectors: connectors.into_iter().map(Arc::new).collect(),
        })
    }

    /// A registry of already-valid configs (tests, programmatic use).
    pub fn from_configs(configs: impl IntoIterator<Item = ConnectorConfig>) -> Self {
        Self {
            connectors: configs.into_iter().map(Arc::new).collect(),
        }
    }

    /// One connector by name.
    pub fn get(&self, name: &str) -> Option<&Arc<ConnectorConfig>> {
        self.connectors.iter().find(|c| c.name == name)
    }

    /// Every configured connector, in file order.
    pub fn all(&self) -> &[Arc<ConnectorConfig>] {
        &self.connectors
    }

    /// Enabled connectors.
    pub fn enabled(&self) -> impl Iterator<Item = &Arc<ConnectorConfig>> {
        self.connectors.iter().filter(|c| c.enabled)
    }

    /// The whole configuration with secrets hidden, for `validate` and logs.
    pub fn redacted(&self) -> Value {
        let list: Vec<Value> = self.connectors.iter().map(|c| c.redacted()).collect();
        serde_json::json!({ "connectors": list })
    }
}
