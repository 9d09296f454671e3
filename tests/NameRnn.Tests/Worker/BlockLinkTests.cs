using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Akka.Actor;
using NameRnn.Contracts;
using NameRnn.Worker;

namespace NameRnn.Tests.Worker;

/// <summary>The workers' direct links for block sums, over real sockets on 127.0.0.1.</summary>
public sealed class BlockLinkTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private readonly ActorSystem _system = ActorSystem.Create("block-link-tests");
    private readonly NameRnnSerializer _serializer;
    private readonly List<BlockLink> _links = [];

    public BlockLinkTests() => _serializer = new NameRnnSerializer((ExtendedActorSystem)_system);

    private sealed class Inbox
    {
        public BlockingCollection<GradientsComputed> Blocks { get; } = new();
        public ConcurrentQueue<string> Warnings { get; } = new();

        /// <summary>Waits for a warning that contains <paramref name="text"/>.</summary>
        public void AwaitWarning(string text) =>
            Eventually(() => Warnings.Any(w => w.Contains(text)), () => $"no warning with '{text}'; warnings: {string.Join(" | ", Warnings)}");
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; fails with <paramref name="failure"/> after <see cref="Wait"/>.</summary>
    private static void Eventually(Func<bool> condition, Func<string> failure)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Wait, failure());
            Thread.Sleep(5);
        }
    }

    private BlockLink Open(string secret, Inbox inbox, int maxFrameSize = 1 << 20, TimeSpan? helloTimeout = null, int port = 0)
    {
        var link = new BlockLink(IPAddress.Loopback, "127.0.0.1", secret, maxFrameSize, _serializer.BlockFromBinary, _serializer.ToBinary,
            inbox.Blocks.Add, inbox.Warnings.Enqueue, _ => { }, helloTimeout, port);
        _links.Add(link);
        return link;
    }

    private static GradientsComputed Block(int microBatch, int values) =>
        new("run", 7, microBatch, 1, 12.5 + microBatch, 32, Enumerable.Range(0, values).Select(i => MathF.Sin(i * (microBatch + 1)) * 1e-3f).ToArray(), 20, 4, 1e-3);

    private static void AssertSame(GradientsComputed expected, GradientsComputed actual)
    {
        Assert.Equal(expected with { Gradients = [] }, actual with { Gradients = [] });
        Assert.Equal(expected.Gradients.Select(BitConverter.SingleToInt32Bits), actual.Gradients.Select(BitConverter.SingleToInt32Bits));
    }

    /// <summary>
    /// Sends <paramref name="block"/> once the sender's connection to <paramref name="endpoint"/> is up (a link
    /// connects in the background and refuses blocks until then: they would go through the remoting).
    /// </summary>
    private static void SendOnceConnected(BlockLink sender, string endpoint, GradientsComputed block) =>
        Eventually(() => sender.TrySend(endpoint, block), () => $"no connection to {endpoint}");

    private static (string Host, int Port) Split(string endpoint) => (endpoint[..endpoint.LastIndexOf(':')], int.Parse(endpoint[(endpoint.LastIndexOf(':') + 1)..]));

    /// <summary>A raw connection to a link, for writing what a real link would not.</summary>
    private static Socket Raw(BlockLink link)
    {
        var (host, port) = Split(link.Endpoint);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        socket.Connect(host, port);
        return socket;
    }

    private static byte[] Hello(string secret)
    {
        var bytes = Encoding.UTF8.GetBytes(secret);
        var hello = new byte[8 + bytes.Length];
        BinaryPrimitives.WriteInt32LittleEndian(hello, BlockLink.Magic);
        BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(4), bytes.Length);
        bytes.CopyTo(hello, 8);
        return hello;
    }

    private static byte[] Frame(byte[] payload, int? length = null)
    {
        var frame = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32LittleEndian(frame, length ?? payload.Length);
        payload.CopyTo(frame, 4);
        return frame;
    }

    [Fact]
    public void Blocks_sent_over_the_link_arrive_in_order_with_the_same_bits()
    {
        var inbox = new Inbox();
        var receiver = Open("s3cret", inbox, maxFrameSize: 4 << 20);
        var sender = Open("s3cret", new Inbox());
        // The default model's 26 130 values, and more than a socket's buffer at once.
        var blocks = new[] { Block(0, 26_130), Block(1, 26_130), Block(2, 400_000) };
        SendOnceConnected(sender, receiver.Endpoint, blocks[0]);
        foreach (var block in blocks.Skip(1)) Assert.True(sender.TrySend(receiver.Endpoint, block));
        foreach (var block in blocks)
        {
            Assert.True(inbox.Blocks.TryTake(out var got, Wait), "a block did not arrive");
            AssertSame(block, got);
        }
        Assert.Empty(inbox.Warnings);
    }

    [Fact]
    public void A_sender_without_the_cluster_secret_delivers_nothing_and_the_link_goes_on()
    {
        var inbox = new Inbox();
        var receiver = Open("open sesame", inbox);
        SendOnceConnected(Open("guess", new Inbox()), receiver.Endpoint, Block(0, 100));
        inbox.AwaitWarning("cluster secret");
        var block = Block(1, 100);
        SendOnceConnected(Open("open sesame", new Inbox()), receiver.Endpoint, block);
        Assert.True(inbox.Blocks.TryTake(out var got, Wait));
        AssertSame(block, got);
        Assert.Empty(inbox.Blocks);
    }

    [Fact]
    public void Garbage_a_size_out_of_range_a_cut_block_or_a_corrupt_one_ends_only_its_own_connection()
    {
        var inbox = new Inbox();
        var receiver = Open("", inbox, maxFrameSize: 1 << 16);
        var good = _serializer.ToBinary(Block(0, 100));

        var corrupt = (byte[])good.Clone();
        corrupt[0] ^= 0xFF; // the serializer's format version
        (byte[] Bytes, string Warning)[] bad =
        [
            (Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\n\r\n"), "does not start as a NameRnn block link"),
            ([.. Hello(""), .. Frame(good, length: int.MaxValue)], $"a block of {int.MaxValue} bytes, expected 1 to {1 << 16}"),
            ([.. Hello(""), .. Frame(good, length: -4)], "a block of -4 bytes"),
            ([.. Hello(""), .. Frame(good)[..(good.Length / 2)]], "end of the stream"),
            ([.. Hello(""), .. Frame(corrupt)], "wire format version"),
        ];
        foreach (var (bytes, warning) in bad)
        {
            // One connection at a time, each ended by its own warning.
            var before = inbox.Warnings.Count;
            using (var socket = Raw(receiver)) socket.Send(bytes);
            Eventually(() => inbox.Warnings.Count > before, () => $"no warning for what should end with '{warning}'");
            Assert.Contains(warning, inbox.Warnings.Last());
        }

        Assert.Empty(inbox.Blocks);
        var block = Block(3, 100);
        SendOnceConnected(Open("", new Inbox()), receiver.Endpoint, block);
        Assert.True(inbox.Blocks.TryTake(out var got, Wait));
        AssertSame(block, got);
    }

    [Fact]
    public void A_connection_that_does_not_present_itself_in_time_is_dropped_while_a_peer_sends_blocks()
    {
        var inbox = new Inbox();
        var receiver = Open("s3cret", inbox, helloTimeout: TimeSpan.FromMilliseconds(300));
        using var silent = Raw(receiver);
        silent.ReceiveTimeout = (int)Wait.TotalMilliseconds;
        var block = Block(0, 100);
        SendOnceConnected(Open("s3cret", new Inbox()), receiver.Endpoint, block);
        Assert.True(inbox.Blocks.TryTake(out var got, Wait));
        AssertSame(block, got);
        inbox.AwaitWarning("timed out");
        // The silent connection was closed by the receiver.
        Assert.Equal(0, silent.Receive(new byte[1]));
    }

    [Fact]
    public void A_link_told_its_port_listens_there_and_a_second_link_cannot_take_that_port()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var inbox = new Inbox();
        var link = Open("s", inbox, port: port);
        Assert.Equal($"127.0.0.1:{port}", link.Endpoint);
        var sender = Open("s", new Inbox());
        var block = Block(0, 1000);
        SendOnceConnected(sender, $"127.0.0.1:{port}", block);
        Assert.True(inbox.Blocks.TryTake(out var got, Wait));
        AssertSame(block, got);
        // The worker node then logs a warning and its peers send that slot's blocks through the remoting.
        Assert.Throws<SocketException>(() => Open("s", inbox, port: port));
    }

    [Fact]
    public void A_block_for_a_link_that_is_gone_is_refused_so_that_it_goes_through_the_remoting()
    {
        var inbox = new Inbox();
        var receiver = Open("", inbox);
        var senderWarnings = new Inbox();
        var sender = Open("", senderWarnings);
        SendOnceConnected(sender, receiver.Endpoint, Block(0, 1000));
        Assert.True(inbox.Blocks.TryTake(out _, Wait));
        receiver.Dispose();
        // The first write after the peer closed may still land in the socket's buffer; the next ones fail.
        var results = Enumerable.Range(1, 5).Select(i => { Thread.Sleep(50); return sender.TrySend(receiver.Endpoint, Block(i, 30_000)); }).ToList();
        Assert.Contains(false, results);
        Assert.All(results.SkipWhile(r => r), r => Assert.False(r));
        Assert.Contains(senderWarnings.Warnings, w => w.Contains(receiver.Endpoint));

        // Nothing listens there at all, or the endpoint is not one: refused, once with a warning.
        var closed = Open("", new Inbox());
        var endpoint = closed.Endpoint;
        closed.Dispose();
        foreach (var nowhere in new[] { endpoint, "no-port-here" })
        {
            var lonely = new Inbox();
            var link = Open("", lonely);
            Eventually(() =>
            {
                Assert.False(link.TrySend(nowhere, Block(0, 10)));
                return !lonely.Warnings.IsEmpty;
            }, () => $"no warning for {nowhere}");
            Assert.Contains($"cannot connect to the block link at {nowhere}", lonely.Warnings.Single());
            Assert.False(link.TrySend(nowhere, Block(1, 10)));
            Assert.Single(lonely.Warnings);
        }
    }

    public void Dispose()
    {
        foreach (var link in _links) link.Dispose();
        _system.Dispose();
    }
}
