//! Attacks loading: `describe` (which must not call imports) sleeps an hour
//! on a monotonic-clock pollable before describing itself.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "narakim:extension/extension@0.1.0",
    generate_all,
});

struct SlowDescribe;

impl Guest for SlowDescribe {
    fn describe() -> Description {
        wasi::clocks::monotonic_clock::subscribe_duration(3_600_000_000_000).block();
        Description {
            name: "slow-describe".into(),
            version: "0.1.0".into(),
            description: "Takes an hour to describe itself".into(),
            required_secrets: vec![],
            secret_fields: vec![],
            allowed_hosts: vec![],
            host_fields: vec![],
        }
    }

    fn run(_config: String, _input: String) -> Result<String, String> {
        Ok("{}".into())
    }
}

export!(SlowDescribe);
