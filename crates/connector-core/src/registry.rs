//! The factory registry (connector type → how to build one) and the validated set of
//! configured connectors.
//!
//! Registration is one explicit line per provider, in the binary that wants it:
//! `factories.register::<NoaaProvider>()`. No linker tricks: what a binary can run is
//! what its `main` lists.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::{
    self, ConfigErrors, ConfigSource, ConnectorConfig, Environment, FieldError,
    parse_provider_config,
};
use crate::pipeline::{CreateError, PollingConnector, Provider, UniversalPollingConnector};
use crate::ports::Backends;

/// Connector types of the product, whether or not the running binary includes them. A
/// config naming one of these that this binary was not built with is skipped (another
/// binary runs it); any other unknown type is a mistake.
pub const BUILTIN_TYPES: [&str; 4] = ["DATADOG", "GITHUB", "JIRA", "NOAA_WEATHER"];

/// Builds connectors of one type.
pub trait ConnectorFactory: Send + Sync {
    /// The type name it builds.
    fn connector_type(&self) -> &'static str;
    /// Checks `providerConfig`; paths are relative to it.
    fn validate(&self, provider_config: &Map<String, Value>) -> Vec<FieldError>;
    /// JSON Schema of `providerConfig`.
    fn provider_schema(&self) -> Value;
    /// Builds a connector from a validated config.
    fn create(
        &self,
        config: Arc<ConnectorConfig>,
        backends: Backends,
    ) -> Result<Box<dyn PollingConnector>, CreateError>;
}

/// The factory of any [`Provider`]: validation from its typed config and schema, creation
/// through the generic pipeline.
pub struct ProviderFactory<P>(PhantomData<fn() -> P>);

impl<P: Provider> Default for ProviderFactory<P> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<P: Provider> ProviderFactory<P> {
    fn known_fields() -> Vec<String> {
        Self::schema()
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn schema() -> Value {
        serde_json::to_value(schemars::schema_for!(P::Config)).unwrap_or_default()
    }

    fn parse(provider_config: &Map<String, Value>) -> Result<P::Config, Vec<FieldError>> {
        let known = Self::known_fields();
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        let mut settings = provider_config.clone();
        coerce_to_schema(&mut settings, &Self::schema());
        let parsed: P::Config = parse_provider_config(&settings, &known)?;
        let problems = P::check(&parsed);
        if problems.is_empty() {
            Ok(parsed)
        } else {
            Err(problems)
        }
    }
}

impl<P: Provider> ConnectorFactory for ProviderFactory<P> {
    fn connector_type(&self) -> &'static str {
        P::TYPE
    }

    fn validate(&self, provider_config: &Map<String, Value>) -> Vec<FieldError> {
        Self::parse(provider_config).err().unwrap_or_default()
    }

    fn provider_schema(&self) -> Value {
        Self::schema()
    }

    fn create(
        &self,
        config: Arc<ConnectorConfig>,
        backends: Backends,
    ) -> Result<Box<dyn PollingConnector>, CreateError> {
        let typed = Self::parse(&config.provider_config).map_err(|errors| {
            let list: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
            CreateError(format!("invalid providerConfig: {}", list.join("; ")))
        })?;
        let provider = P::new(typed, &config)?;
        Ok(Box::new(UniversalPollingConnector::new(
            provider, config, backends,
        )))
    }
}

/// Environment variables and `${VAR}` substitutions only produce text, and the loader
/// reads `123` in a variable as a number: bring each top-level provider value to the type
/// the provider's schema declares, when the conversion is lossless.
fn coerce_to_schema(settings: &mut Map<String, Value>, schema: &Value) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, value) in settings.iter_mut() {
        let Some(types) = props.get(key).and_then(|p| p.get("type")) else {
            continue;
        };
        let accepts = |t: &str| match types {
            Value::String(s) => s == t,
            Value::Array(list) => list.iter().any(|x| x == t),
            _ => false,
        };
        let replacement = match &*value {
            Value::Number(n) if accepts("string") && !accepts("integer") && !accepts("number") => {
                Some(Value::String(n.to_string()))
            }
            Value::Bool(b) if accepts("string") && !accepts("boolean") => {
                Some(Value::String(b.to_string()))
            }
            Value::String(s) if !accepts("string") => {
                if accepts("integer") {
                    s.parse::<i64>().ok().map(Value::from)
                } else if accepts("number") {
                    s.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .map(Value::from)
                } else if accepts("boolean") {
                    s.parse::<bool>().ok().map(Value::Bool)
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *value = r;
        }
    }
}

/// Connector types this binary can build.
#[derive(Clone, Default)]
pub struct Factories {
    map: BTreeMap<&'static str, Arc<dyn ConnectorFactory>>,
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
            .map(|(t, f)| (*t, f.provider_schema()))
            .collect();
        config::json_schema(&providers)
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
