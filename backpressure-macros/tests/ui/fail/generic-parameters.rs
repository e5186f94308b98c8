use backpressure::backpressure_worker;

#[backpressure_worker]
async fn send<T: Send + 'static>(item: T) {
    let _ = item;
}

fn main() {}
