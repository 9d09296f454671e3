using NameRnn.Worker.Hosting;
using NameRnn.Model.Data;
using Serilog;

namespace NameRnn.Coordinator.Cli;

/// <summary>
/// Finds the data set: the path given, else <c>DIR/names</c> or <c>DIR/data.zip</c>, else the
/// official archive downloaded into <c>DIR/data.zip</c> (like torchvision's <c>download=True</c>).
/// </summary>
public static class DataLocator
{
    public const string OfficialUrl = "https://download.pytorch.org/tutorial/data.zip";

    public static async Task<string> ResolveAsync(string? given, string dataDir, string url, ILogger log)
    {
        if (!string.IsNullOrWhiteSpace(given)) return given;
        var folder = Path.Combine(dataDir, "names");
        if (Directory.Exists(folder) && Directory.EnumerateFiles(folder, "*.txt").Any()) return folder;
        var zip = Path.Combine(dataDir, "data.zip");
        if (File.Exists(zip)) return zip;
        log.Information("No data in {DataDir}: downloading {Url} to {Zip}", dataDir, url, zip);
        return await DownloadAsync(url, dataDir);
    }

    /// <summary>Downloads the archive to DIR/data.zip (through a temporary file) and checks that it holds the names.</summary>
    public static async Task<string> DownloadAsync(string url, string dataDir)
    {
        var zip = Path.Combine(dataDir, "data.zip");
        var temporary = zip + ".download";
        try
        {
            Directory.CreateDirectory(dataDir);
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(120) };
            using (var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead))
            {
                if (!response.IsSuccessStatusCode)
                    throw new HttpRequestException($"HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
                await using var body = await response.Content.ReadAsStreamAsync();
                await using var file = File.Create(temporary);
                await body.CopyToAsync(file);
            }
            NamesData.Load(temporary);
            File.Move(temporary, zip, overwrite: true);
            return zip;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException or UriFormatException or InvalidOperationException or DataException)
        {
            File.Delete(temporary);
            throw new DataException($"could not download the data from {url} ({e.Message}): pass --data with a folder of <Language>.txt files or the tutorial's data.zip, or put data.zip into {dataDir}/");
        }
    }
}
