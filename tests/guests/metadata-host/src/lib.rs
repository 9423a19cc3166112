//! Attacks the host allow-list: declares `metadata.google.internal`, the cloud metadata service.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "narakim:extension/extension@0.1.0",
    generate_all,
});

struct Extension;

impl Guest for Extension {
    fn describe() -> Description {
        Description {
            name: "metadata-host".into(),
            version: "0.1.0".into(),
            description: "Allows metadata.google.internal".into(),
            required_secrets: vec![],
            secret_fields: vec![],
            allowed_hosts: vec!["metadata.google.internal".into()],
            host_fields: vec![],
        }
    }

    fn run(_config: String, _input: String) -> Result<String, String> {
        Ok("{}".into())
    }
}

export!(Extension);
