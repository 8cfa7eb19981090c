//! Progress bars on stderr (hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `unit`s, labelled `message`.
pub fn bar(message: &'static str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    let template = format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{eta}})");
    bar.set_style(
        ProgressStyle::with_template(&template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

/// A callback that moves `bar` to (done, total).
pub fn updater(bar: &ProgressBar) -> impl FnMut(usize, usize) + '_ {
    move |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}
