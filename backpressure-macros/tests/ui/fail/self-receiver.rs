use backpressure::backpressure_worker;

struct Mailer;

impl Mailer {
    #[backpressure_worker]
    async fn send(&self, item: u32) {
        let _ = item;
    }
}

fn main() {}
