using NameRnn.Worker;
using NameRnn.Worker.Hosting;

namespace NameRnn.Tests.Worker;

/// <summary>The worker program's options for its direct block links, as its command line gives them.</summary>
public class WorkerSettingsTests
{
    private static WorkerSettings Parse(params string[] args)
    {
        var settings = new WorkerSettings();
        CommandLine.Apply(settings, ["--seed-node", "akka.tcp://namernn@127.0.0.1:4053", .. args]);
        settings.Validate();
        return settings;
    }

    [Fact]
    public void Slot_i_listens_for_blocks_on_the_block_port_plus_i_minus_one_or_on_any_free_port_by_default()
    {
        var links = Parse("--block-port", "4055", "--slots", "3").BlockLinks!;
        Assert.Equal([4055, 4056, 4057], new[] { 1, 2, 3 }.Select(links.PortOf));
        Assert.Equal(0, Parse("--slots", "2").BlockLinks!.PortOf(2));
        Assert.Null(Parse("--block-port", "4055", "--direct-blocks", "off").BlockLinks);
    }

    [Theory]
    [InlineData("70000", "1", "--block-port")]
    [InlineData("-1", "1", "--block-port")]
    [InlineData("65535", "2", "no port for slot 2 of --slots 2")]
    [InlineData("65400", "256", "no port for slots 137 to 256 of --slots 256")]
    public void A_block_port_that_leaves_a_slot_without_a_port_is_a_usage_error(string port, string slots, string named)
    {
        var error = Assert.Throws<UsageException>(() => Parse("--block-port", port, "--slots", slots));
        Assert.Contains("--block-port", error.Message);
        Assert.Contains(named, error.Message);
    }
}
