//! A plain wasip2 command: a component, but not of the narakim world.
fn main() {
    println!("hello from a command component");
}
