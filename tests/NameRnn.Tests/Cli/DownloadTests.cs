using System.Net;
using System.Net.Sockets;
using NameRnn.Model.Data;

namespace NameRnn.Tests.Cli;

/// <summary>The data download, against a zip served by a real HTTP listener on 127.0.0.1.</summary>
public sealed class DownloadTests : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly string _zip;
    private readonly string _prefix;
    private int _requests;

    public DownloadTests()
    {
        _zip = TestData.TutorialZip(TestData.TempFolder());
        var port = FreePort();
        _prefix = $"http://127.0.0.1:{port}/";
        _listener.Prefixes.Add(_prefix);
        _listener.Start();
        _ = ServeAsync();
    }

    private static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception) { return; }
            Interlocked.Increment(ref _requests);
            if (context.Request.Url!.AbsolutePath == "/tutorial/data.zip")
            {
                var bytes = await File.ReadAllBytesAsync(_zip);
                context.Response.ContentType = "application/zip";
                await context.Response.OutputStream.WriteAsync(bytes);
            }
            else
            {
                context.Response.StatusCode = 404;
            }
            context.Response.Close();
        }
    }

    [Fact]
    public async Task Data_fetch_downloads_the_archive_into_the_data_folder()
    {
        var dataDir = Path.Combine(TestData.TempFolder(), "data");
        var result = await CliRunner.RunAsync("data", "fetch", "--data-url", _prefix + "tutorial/data.zip", "--data-dir", dataDir);
        Assert.True(result.ExitCode == 0, result.Error);
        var saved = Path.Combine(dataDir, "data.zip");
        Assert.Equal(await File.ReadAllBytesAsync(_zip), await File.ReadAllBytesAsync(saved));
        Assert.Equal(NamesData.Load(TestData.NamesFolder).Pairs, NamesData.Load(saved).Pairs);
    }

    [Fact]
    public async Task Train_without_data_downloads_it_once_and_says_so()
    {
        var dataDir = Path.Combine(TestData.TempFolder(), "data");
        var url = _prefix + "tutorial/data.zip";
        string[] args = ["train", "--data-dir", dataDir, "--data-url", url, "--max-names", "200", "--epochs", "1", "--workers", "1"];
        var first = await CliRunner.RunAsync([.. args, "--out", Path.Combine(dataDir, "..", "run1")]);
        Assert.True(first.ExitCode == 0, first.Error);
        Assert.Contains("downloading", first.Error);
        Assert.True(File.Exists(Path.Combine(dataDir, "data.zip")));
        var second = await CliRunner.RunAsync([.. args, "--out", Path.Combine(dataDir, "..", "run2")]);
        Assert.True(second.ExitCode == 0, second.Error);
        Assert.DoesNotContain("downloading", second.Error);
        Assert.Equal(1, _requests);
    }

    [Fact]
    public async Task A_failed_download_says_how_to_pass_the_data_instead()
    {
        var dataDir = Path.Combine(TestData.TempFolder(), "data");
        var result = await CliRunner.RunAsync("data", "fetch", "--data-url", _prefix + "missing.zip", "--data-dir", dataDir);
        Assert.Equal(1, result.ExitCode);
        var line = result.Error.Trim();
        Assert.Contains("404", line);
        Assert.Contains("--data", line);
        Assert.False(File.Exists(Path.Combine(dataDir, "data.zip")));
        Assert.Empty(Directory.GetFiles(dataDir));
    }

    public void Dispose() => _listener.Close();
}
