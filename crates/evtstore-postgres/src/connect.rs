//! Connections: the URL, time limits, keepalives, TLS and the pool.
//!
//! Nothing waits forever. A connection (TCP, TLS and start-up together) must be made within
//! `connect_timeout`, a statement answered within `statement_timeout`, and TCP keepalives and
//! `tcp_user_timeout` let the system notice a server that vanished. A connection that was in
//! use when the server dropped one or a time limit passed is not reused: see [`Renewal`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts,
};
use evtstore_core::{Error, Result};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::PgOptions;
use crate::driven::{DrivenConnect, Drivers};
use crate::failure::{Limits, with_details};
use crate::tls::{PgSslMode, connector};

/// Keepalive probes start after this much silence, repeat this often, and give up after
/// this many: a vanished server is noticed within about half a minute.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;

/// The TLS settings of a URL that the driver's parser does not take.
#[derive(Debug, Default)]
pub(crate) struct UrlTls {
    pub(crate) mode: Option<PgSslMode>,
    pub(crate) root_cert: Option<PathBuf>,
}

/// Parses a URL (or a `key=value` string, passed to the driver as it is), taking out
/// `sslmode` (the driver knows no verify-ca or verify-full) and `sslrootcert`.
pub(crate) fn parse_url(url: &str) -> Result<(tokio_postgres::Config, UrlTls)> {
    let mut tls = UrlTls::default();
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (base, query) = url.split_once('?').filter(|_| is_url).unwrap_or((url, ""));
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => tls.mode = Some(value.parse()?),
            Some(("sslrootcert", path)) => tls.root_cert = Some(path.into()),
            _ => kept.push(pair),
        }
    }
    let rest = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    // The message names the bad parameter, never the URL: it may hold a password.
    let config = rest
        .parse()
        .map_err(|e| Error::backend(with_details("invalid PostgreSQL URL".into(), &e), e))?;
    Ok((config, tls))
}

/// Where and how to connect.
#[derive(Clone)]
pub(crate) struct Target {
    /// The driver's settings, time limits and keepalives included.
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: MakeRustlsConnect,
    pub(crate) limits: Limits,
    /// `host:port/database`, for messages (never the password).
    pub(crate) server: String,
}

impl Target {
    /// The driver's settings with the options' time limits (a URL's `connect_timeout` wins),
    /// keepalives, and TLS as `tls` or the options say.
    pub(crate) fn new(
        mut config: tokio_postgres::Config,
        tls: UrlTls,
        options: &PgOptions,
    ) -> Result<Self> {
        let connect = config.get_connect_timeout().copied();
        let limits = Limits {
            connect: connect.unwrap_or(options.connect_timeout),
            statement: options.statement_timeout,
        };
        keep_alive(&mut config, limits);
        let mode = (options.ssl_mode.or(tls.mode)).unwrap_or_else(|| PgSslMode::of(&config));
        config.ssl_mode(mode.driver());
        let root_cert = options
            .ssl_root_cert
            .as_deref()
            .or(tls.root_cert.as_deref());
        Ok(Target {
            server: describe(&config),
            tls: connector(mode, root_cert)?,
            config,
            limits,
        })
    }

    /// A pool of connections with generic plans, within the time limits: a caller waits at
    /// most `statement_timeout` for a free connection, and `connect_timeout` for a new one.
    /// Its connections are driven by polling callers where they can be (see `driven`).
    pub(crate) fn pool(
        &self,
        size: usize,
        renewal: &Renewal,
        checks: Hook,
        drivers: Drivers,
    ) -> Result<Pool> {
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let connect = DrivenConnect {
            tls: self.tls.clone(),
            drivers,
        };
        let manager = Manager::from_connect(pooled(&self.config), connect, manager_config);
        let timeouts = Timeouts {
            wait: Some(self.limits.statement),
            create: Some(self.limits.connect),
            recycle: Some(self.limits.connect),
        };
        Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .timeouts(timeouts)
            .pre_recycle(renewal.hook())
            .post_create(checks)
            .build()
            .map_err(|e| Error::backend("cannot build the PostgreSQL pool", e))
    }
}

/// Keepalives and a limit on unacknowledged data, unless the URL set its own.
fn keep_alive(config: &mut tokio_postgres::Config, limits: Limits) {
    config.connect_timeout(limits.connect);
    config.keepalives(true);
    if config.get_keepalives_idle() == tokio_postgres::Config::new().get_keepalives_idle() {
        config.keepalives_idle(KEEPALIVE_IDLE);
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(KEEPALIVE_INTERVAL);
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(KEEPALIVE_RETRIES);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(limits.statement);
    }
}

/// The pool's connection settings: the caller's, with generic plans for prepared statements.
/// The append statement's plan depends on no parameter value, and planning it afresh for each
/// append (PostgreSQL's default for its first executions, and whenever it guesses a custom plan
/// is cheaper) costs more than running it.
fn pooled(config: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut pooled = config.clone();
    let options = config.get_options().unwrap_or_default();
    pooled.options(format!("{options} -c plan_cache_mode=force_generic_plan").trim());
    pooled
}

/// `host:port/database` of a configuration, without credentials.
fn describe(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("{host}:{port}/{database}")
}

/// When the server dropped a connection or did not answer in time, the pool's other
/// connections may be as dead (a restart, a network fault), and the one that was in use may
/// still be on its way back: every connection handed out before that moment is closed instead
/// of reused, so the next call connects afresh.
#[derive(Clone)]
pub(crate) struct Renewal(Arc<Mutex<Instant>>);

impl Renewal {
    pub(crate) fn new() -> Self {
        Renewal(Arc::new(Mutex::new(Instant::now())))
    }

    /// Retires every connection handed out until now.
    pub(crate) fn renew(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// The pool's check before it hands out a connection again.
    fn hook(&self) -> Hook {
        let since = self.0.clone();
        Hook::sync_fn(move |_, metrics| {
            let handed_out = metrics.recycled.unwrap_or(metrics.created);
            match handed_out < *since.lock().unwrap_or_else(|e| e.into_inner()) {
                true => Err(HookError::message("in use when a connection was lost")),
                false => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_a_url_and_the_rest_kept() {
        let url =
            "postgres://app@db:6432/shop?sslmode=verify-ca&application_name=x&sslrootcert=/ca.pem";
        let (config, tls) = parse_url(url).unwrap();
        assert_eq!(tls.mode, Some(PgSslMode::VerifyCa));
        assert_eq!(tls.root_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(config.get_application_name(), Some("x"));
        assert_eq!(describe(&config), "db:6432/shop");
    }

    #[test]
    fn a_key_value_string_goes_to_the_driver_as_it_is() {
        let (config, tls) = parse_url("host=db user=app sslmode=require").unwrap();
        assert_eq!((tls.mode, tls.root_cert), (None, None));
        assert_eq!(PgSslMode::of(&config), PgSslMode::Require);
    }

    #[test]
    fn the_urls_connect_timeout_wins_and_keepalives_are_set() {
        let (config, tls) = parse_url("postgres://app@db/shop?connect_timeout=3").unwrap();
        let target = Target::new(config, tls, &PgOptions::default()).unwrap();
        assert_eq!(target.limits.connect, Duration::from_secs(3));
        assert_eq!(target.limits.statement, Duration::from_secs(30));
        assert_eq!(target.config.get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(
            target.config.get_tcp_user_timeout(),
            Some(&Duration::from_secs(30))
        );
    }
}
