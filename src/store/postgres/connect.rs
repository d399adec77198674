//! How the PostgreSQL store reaches its server: `storage.url` parsed once into the
//! client's settings, the password (from the URL or `storage.password_file`), TLS per
//! `sslmode` (rustls on ring, with `storage.ca_file` or the platform's roots), and the
//! socket settings that let a coordinator notice a dead server or network quickly.
//!
//! Invariant: the password never appears in anything this module shows — [`ConnectOptions::shown`]
//! is the URL with the password replaced by `***`, and every error names that form only.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, as far as a client without client certificates has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, certificate unchecked (libpq's default).
    Prefer,
    /// TLS or nothing, certificate unchecked.
    Require,
    /// TLS, the certificate signed by a trusted CA (any name).
    VerifyCa,
    /// TLS, the certificate signed by a trusted CA and naming the host.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other} is not known: use disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }
}

/// Everything needed to open connections to the store's database.
#[derive(Clone)]
pub struct ConnectOptions {
    config: postgres::Config,
    sslmode: SslMode,
    /// The CA certificates of `storage.ca_file` (or the URL's `sslrootcert`), when given.
    ca: Option<Vec<CertificateDer<'static>>>,
    ca_path: Option<String>,
    shown: String,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions").field("url", &self.shown).field("sslmode", &self.sslmode).finish()
    }
}

/// `url` with its password replaced by `***` (for messages and logs).
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(a storage.url that does not parse)".into(),
    }
}

impl ConnectOptions {
    /// Parses `storage.url` with `storage.password_file` and `storage.ca_file`. With
    /// `read_files` false the files are not read (a config check that must not touch the
    /// disk); errors never contain the password.
    pub fn parse(
        url: &str,
        password_file: Option<&Path>,
        ca_file: Option<&Path>,
        read_files: bool,
    ) -> Result<ConnectOptions, String> {
        let shown = redact(url);
        let mut parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("{shown} is not a URL ({e}); write postgres://USER@HOST:PORT/DATABASE"))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(format!("{shown} is not a postgres:// URL"));
        }
        if parsed.path().trim_start_matches('/').is_empty() {
            return Err(format!("{shown} names no database: add /DATABASE"));
        }
        // sslmode and sslrootcert are ours to handle (the client library knows only three
        // modes and no CA file); every other parameter goes to it as it is.
        let mut sslmode = None;
        let mut rootcert = None;
        let rest: Vec<(String, String)> = parsed
            .query_pairs()
            .filter_map(|(k, v)| match k.as_ref() {
                "sslmode" => {
                    sslmode = Some(v.into_owned());
                    None
                }
                "sslrootcert" => {
                    rootcert = Some(v.into_owned());
                    None
                }
                _ => Some((k.into_owned(), v.into_owned())),
            })
            .collect();
        if rest.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(rest);
        }
        let has_password = parsed.password().is_some();
        let mut config = postgres::Config::from_str(parsed.as_str())
            .map_err(|e| format!("{shown}: {}", e.to_string().replace(url, &shown)))?;
        if config.get_user().is_none() {
            return Err(format!("{shown} names no user: write postgres://USER@HOST/DATABASE"));
        }
        if let Some(file) = password_file {
            if has_password {
                return Err(format!(
                    "both storage.url and storage.password_file ({}) give a password: keep one",
                    file.display()
                ));
            }
            if read_files {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| format!("cannot read storage.password_file {}: {e}", file.display()))?;
                let password = text.lines().next().unwrap_or("").to_string();
                if password.is_empty() {
                    return Err(format!("storage.password_file {} is empty", file.display()));
                }
                config.password(password);
            }
        }
        let ca_path = ca_file.map(|p| p.display().to_string()).or(rootcert);
        let sslmode = match sslmode {
            Some(m) => m.parse()?,
            None if ca_path.is_some() => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        let ca = match (&ca_path, read_files) {
            (Some(path), true) => Some(read_ca(Path::new(path))?),
            _ => None,
        };
        config.ssl_mode(match sslmode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        // A dead server or a cut network shows within seconds, not after the kernel's
        // two hours: the leader's lease is counted in seconds.
        config
            .connect_timeout(Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(2))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3);
        #[cfg(target_os = "linux")]
        config.tcp_user_timeout(Duration::from_secs(5));
        if config.get_application_name().is_none() {
            config.application_name("openclaw");
        }
        Ok(ConnectOptions { config, sslmode, ca, ca_path, shown })
    }

    /// The URL for messages, password replaced.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub fn config(&self) -> &postgres::Config {
        &self.config
    }

    /// The TLS connector for `sslmode`.
    pub fn tls(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = match (self.sslmode, &self.ca) {
            (SslMode::Disable | SslMode::Prefer | SslMode::Require, _) => Arc::new(Unverified(provider)),
            (mode, Some(ca)) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in ca {
                    roots
                        .add(cert.clone())
                        .map_err(|e| format!("storage.ca_file {}: {e}", self.ca_path.as_deref().unwrap_or("?")))?;
                }
                let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| format!("cannot set up TLS: {e}"))?;
                if mode == SslMode::VerifyCa { Arc::new(AnyName(webpki)) } else { webpki }
            }
            (mode, None) => {
                let platform = rustls_platform_verifier::Verifier::new(provider)
                    .map_err(|e| format!("cannot load this machine's CA certificates: {e}"))?;
                if mode == SslMode::VerifyCa { Arc::new(AnyName(Arc::new(platform))) } else { Arc::new(platform) }
            }
        };
        let config = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| format!("cannot read storage.ca_file {}: {e}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("storage.ca_file {} is not a PEM certificate ({e})", path.display()))?;
    if certs.is_empty() {
        return Err(format!("storage.ca_file {} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// `sslmode` prefer/require: encrypted, the certificate not checked (as libpq does without
/// a root certificate); the handshake's signatures are still verified.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted CA; the name is not checked.
#[derive(Debug)]
struct AnyName(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows_and_bad_urls_say_what_to_write() {
        let o =
            ConnectOptions::parse("postgres://app:s3cret@db.example:5433/cluster?sslmode=require", None, None, true)
                .unwrap();
        assert_eq!(o.shown(), "postgres://app:***@db.example:5433/cluster?sslmode=require");
        assert!(!format!("{o:?}").contains("s3cret"));
        assert_eq!(o.sslmode, SslMode::Require);
        assert_eq!(o.config().get_password(), Some(&b"s3cret"[..]));
        for (url, want) in [
            ("mysql://a@b/c", "not a postgres:// URL"),
            ("postgres://a:pw@b", "names no database"),
            ("postgres://a:pw@b/c?sslmode=sometimes", "sslmode=sometimes is not known"),
            ("not a url", "is not a URL"),
        ] {
            let e = ConnectOptions::parse(url, None, None, true).unwrap_err();
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("pw@"), "{url}: {e}");
        }
        let e = ConnectOptions::parse("postgres://a:pw@b/c", Some(Path::new("/x")), None, true).unwrap_err();
        assert!(e.contains("keep one") && !e.contains("pw"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "from-file\n").unwrap();
        let o = ConnectOptions::parse("postgres://a@b/c", Some(&dir.path().join("pw")), None, true).unwrap();
        assert_eq!(o.config().get_password(), Some(&b"from-file"[..]));
        assert_eq!(o.sslmode, SslMode::Prefer);
    }
}
