//! Host bindings generated from `wit/`: one module per published version
//! of the `narakim:extension` world. wasmtime links `0.1` and `0.2` as
//! different packages (for 0.x, the minor version is the breaking one), so
//! both are linked, and each component is instantiated through the world
//! it was built for.

/// `narakim:extension@0.1.0`: `secrets.get` only.
pub(crate) mod v1 {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "narakim:extension/extension@0.1.0",
        imports: { default: trappable },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        },
    });
}

/// `narakim:extension@0.2.0`: adds `credentials`, whose values the guest
/// never holds.
pub(crate) mod v2 {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "narakim:extension/extension@0.2.0",
        imports: { default: trappable },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "narakim:extension/credentials.credential": super::super::host::Credential,
        },
    });
}
