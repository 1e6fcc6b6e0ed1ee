#[derive(Debug, clap::Args)]
pub struct SubmitArgs {}
#[derive(Debug, clap::Args)]
pub struct StatusArgs {}
#[derive(Debug, clap::Args)]
pub struct JobsArgs {}
#[derive(Debug, clap::Args)]
pub struct ResultArgs {}

pub fn submit(_args: SubmitArgs) -> anyhow::Result<()> {
    anyhow::bail!("this subcommand is not built yet")
}
pub fn status(_args: StatusArgs) -> anyhow::Result<()> {
    anyhow::bail!("this subcommand is not built yet")
}
pub fn jobs(_args: JobsArgs) -> anyhow::Result<()> {
    anyhow::bail!("this subcommand is not built yet")
}
pub fn result(_args: ResultArgs) -> anyhow::Result<()> {
    anyhow::bail!("this subcommand is not built yet")
}
