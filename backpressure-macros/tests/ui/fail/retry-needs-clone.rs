use backpressure::backpressure_worker;

struct Mail {
    to: String,
}

#[backpressure_worker(retry(attempts = 3))]
async fn send(mail: Mail) {
    let _ = mail.to;
}

fn main() {}
