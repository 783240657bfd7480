#[derive(Default)]
pub struct TransportOptions {
    pub interactive: bool,
    pub passphrase_env: String,
}
pub struct RusshTransport;
impl RusshTransport {
    pub fn new(_m: &[&crate::inventory::Member], _o: TransportOptions) -> Result<Self, String> {
        todo!()
    }
}
#[async_trait::async_trait]
impl super::Transport for RusshTransport {
    async fn connect(
        &self,
        _m: &crate::inventory::Member,
    ) -> Result<Box<dyn super::Session>, super::SshError> {
        todo!()
    }
}
