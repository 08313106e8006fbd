//! First-start material: the CA, the serving certificate, the bearer tokens and the
//! admin kubeconfig, all under the data directory and reused on later starts.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::ServerError;

/// Paths of everything `prepare` writes.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub server_sans: PathBuf,
    pub admin_token: PathBuf,
    pub node_token: PathBuf,
    pub kubeconfig: PathBuf,
    pub store_dir: PathBuf,
}

impl Files {
    pub(crate) fn new(dir: &Path) -> Self {
        let pki = dir.join("pki");
        Self {
            ca_cert: pki.join("ca.crt"),
            ca_key: pki.join("ca.key"),
            server_cert: pki.join("server.crt"),
            server_key: pki.join("server.key"),
            server_sans: pki.join("server.sans"),
            admin_token: dir.join("admin-token"),
            node_token: dir.join("node-token"),
            kubeconfig: dir.join("kubeconfig.yaml"),
            store_dir: dir.join("store"),
        }
    }
}

/// TLS material loaded for serving.
pub(crate) struct Material {
    pub ca_cert_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub admin_token: String,
    pub node_token: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |e| ServerError::Io(format!("{}: {e}", path.display()))
}

fn tls<E: std::fmt::Display>(e: E) -> ServerError {
    ServerError::Tls(e.to_string())
}

/// Writes a file readable only by its owner (keys and tokens are secrets).
fn write_private(path: &Path, contents: &str) -> Result<(), ServerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(contents.as_bytes()).map_err(io(path))
}

fn read_or_create(
    path: &Path,
    make: impl FnOnce() -> Result<String, ServerError>,
) -> Result<String, ServerError> {
    match fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => {
            let s = make()?;
            write_private(path, &s)?;
            Ok(s)
        }
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The CA's parameters. Rebuilt identically on every start so the stored CA key
/// can sign a new serving certificate without parsing the CA certificate.
fn ca_params() -> Result<CertificateParams, ServerError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "portico-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// SANs of the serving certificate: localhost, 127.0.0.1, the advertise host and extras.
pub(crate) fn server_sans(advertise_url: &str, extra: &[String]) -> Vec<String> {
    let mut sans = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
    ];
    if let Some(host) = advertise_host(advertise_url) {
        sans.push(host);
    }
    sans.extend(extra.iter().cloned());
    let mut seen = Vec::new();
    sans.retain(|s| {
        let keep = !s.is_empty() && !seen.contains(s);
        seen.push(s.clone());
        keep
    });
    sans
}

/// The host part of `https://host:port/...`, without IPv6 brackets.
fn advertise_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = if let Some(stripped) = authority.strip_prefix('[') {
        stripped.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// Creates or loads all material under `dir`.
pub(crate) fn ensure(
    dir: &Path,
    advertise_url: &str,
    extra_sans: &[String],
) -> Result<Material, ServerError> {
    let files = Files::new(dir);
    let pki = dir.join("pki");
    fs::create_dir_all(&pki).map_err(io(&pki))?;

    let ca_key_pem = read_or_create(&files.ca_key, || {
        Ok(KeyPair::generate().map_err(tls)?.serialize_pem())
    })?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(tls)?;
    let ca_cert_pem = match fs::read_to_string(&files.ca_cert) {
        Ok(s) if s.contains("BEGIN CERTIFICATE") => s,
        _ => {
            let pem = ca_params()?.self_signed(&ca_key).map_err(tls)?.pem();
            fs::write(&files.ca_cert, &pem).map_err(io(&files.ca_cert))?;
            pem
        }
    };

    let sans = server_sans(advertise_url, extra_sans);
    let sans_line = sans.join(",");
    let existing_sans = fs::read_to_string(&files.server_sans).unwrap_or_default();
    let server_key_pem = read_or_create(&files.server_key, || {
        Ok(KeyPair::generate().map_err(tls)?.serialize_pem())
    })?;
    let server_cert_pem = match fs::read_to_string(&files.server_cert) {
        Ok(s) if s.contains("BEGIN CERTIFICATE") && existing_sans.trim() == sans_line => s,
        _ => {
            // New or changed SANs: reissue with the same CA so clients keep trusting it.
            let server_key = KeyPair::from_pem(&server_key_pem).map_err(tls)?;
            let mut params = CertificateParams::new(sans.clone()).map_err(tls)?;
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "portico-apiserver");
            params.distinguished_name = dn;
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
            let issuer = Issuer::new(ca_params()?, &ca_key);
            let pem = params.signed_by(&server_key, &issuer).map_err(tls)?.pem();
            fs::write(&files.server_cert, &pem).map_err(io(&files.server_cert))?;
            fs::write(&files.server_sans, &sans_line).map_err(io(&files.server_sans))?;
            pem
        }
    };

    let admin_token = read_or_create(&files.admin_token, || Ok(random_token()))?;
    let node_token = read_or_create(&files.node_token, || Ok(random_token()))?;
    let kc = kubeconfig(advertise_url, &ca_cert_pem, &admin_token);
    if fs::read_to_string(&files.kubeconfig).ok().as_deref() != Some(kc.as_str()) {
        // Write then rename, so a client reading the kubeconfig never sees it half-written.
        let tmp = files.kubeconfig.with_extension("yaml.tmp");
        write_private(&tmp, &kc)?;
        fs::rename(&tmp, &files.kubeconfig).map_err(io(&files.kubeconfig))?;
    }
    Ok(Material {
        ca_cert_pem,
        server_cert_pem,
        server_key_pem,
        admin_token,
        node_token,
    })
}

/// The admin kubeconfig: cluster, context and user all named `portico`.
pub(crate) fn kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: portico\ncontexts:\n- context:\n    cluster: portico\n    user: portico\n  name: portico\ncurrent-context: portico\npreferences: {{}}\nusers:\n- name: portico\n  user:\n    token: {token}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sans_include_defaults_advertise_host_and_extras() {
        let sans = server_sans(
            "https://10.0.0.5:6443",
            &["api.example".to_string(), "localhost".to_string()],
        );
        assert_eq!(&sans[..2], ["localhost", "127.0.0.1"]);
        assert!(sans.contains(&"10.0.0.5".to_string()));
        assert!(sans.contains(&"api.example".to_string()));
        assert_eq!(sans.iter().filter(|s| *s == "localhost").count(), 1);
        assert_eq!(advertise_host("https://[::1]:6443").as_deref(), Some("::1"));
    }

    #[test]
    fn ensure_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure(dir.path(), "https://127.0.0.1:6443", &[]).unwrap();
        let b = ensure(dir.path(), "https://127.0.0.1:6443", &[]).unwrap();
        assert_eq!(a.ca_cert_pem, b.ca_cert_pem);
        assert_eq!(a.server_cert_pem, b.server_cert_pem);
        assert_eq!(a.admin_token, b.admin_token);
        assert_ne!(a.admin_token, a.node_token);
        let c = ensure(
            dir.path(),
            "https://127.0.0.1:6443",
            &["extra.example".to_string()],
        )
        .unwrap();
        assert_eq!(a.ca_cert_pem, c.ca_cert_pem);
        assert_ne!(a.server_cert_pem, c.server_cert_pem);
        let kc = fs::read_to_string(dir.path().join("kubeconfig.yaml")).unwrap();
        assert!(kc.contains("current-context: portico"));
        assert!(kc.contains(&format!("token: {}", a.admin_token)));
    }
}
