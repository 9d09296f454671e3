using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using NameRnn.Contracts;

namespace NameRnn.Tests.Contracts;

/// <summary>A sender whose serializer cuts one message short: it writes the same serializer id and manifests as ours.</summary>
public sealed class CorruptingSerializer(ExtendedActorSystem system) : Akka.Serialization.SerializerWithStringManifest(system)
{
    private readonly NameRnnSerializer _inner = new(system);
    public override int Identifier => NameRnnSerializer.SerializerId;
    public override string Manifest(object o) => _inner.Manifest(o);
    public override object FromBinary(byte[] bytes, string manifest) => _inner.FromBinary(bytes, manifest);

    public override byte[] ToBinary(object obj)
    {
        var bytes = _inner.ToBinary(obj);
        return obj is GradientsComputed { RunId: "corrupt" } ? bytes[..(bytes.Length / 2)] : bytes;
    }
}

/// <summary>Two real actor systems over TCP on 127.0.0.1: a malformed payload is dropped, and the receiving node and the association live on.</summary>
public class RemoteCorruptionTests() : TestKit(Remote(typeof(NameRnnSerializer)), "receiver")
{
    private static Config Remote(Type serializer) => ConfigurationFactory.ParseString($$"""
        akka.actor.provider = remote
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.actor.serializers.namernn = "{{serializer.AssemblyQualifiedName}}"
        akka.actor.serialization-bindings { "{{typeof(INameRnnMessage).AssemblyQualifiedName}}" = namernn }
        """);

    [Fact]
    public async Task A_truncated_payload_is_dropped_and_the_receiver_keeps_working()
    {
        using var sender = ActorSystem.Create("sender", Remote(typeof(CorruptingSerializer)));
        var probe = CreateTestProbe();
        var address = ((ExtendedActorSystem)Sys).Provider.DefaultAddress;
        var target = await sender.ActorSelection(probe.Ref.Path.ToStringWithAddress(address)).ResolveOne(TimeSpan.FromSeconds(10));

        target.Tell(new GradientsComputed("corrupt", 1, 0, 1, 1.0, 2, [1f, 2f, 3f, 4f]));
        target.Tell(new GradientsComputed("good", 1, 1, 1, 2.0, 2, [5f, 6f]));

        var received = probe.ExpectMsg<GradientsComputed>(TimeSpan.FromSeconds(10));
        Assert.Equal("good", received.RunId);
        Assert.Equal([5f, 6f], received.Gradients);
        probe.ExpectNoMsg(TimeSpan.FromMilliseconds(500));
        Assert.False(Sys.WhenTerminated.IsCompleted);

        target.Tell(new WorkerRefused("still connected"));
        Assert.Equal("still connected", probe.ExpectMsg<WorkerRefused>(TimeSpan.FromSeconds(10)).Reason);
        await sender.Terminate();
    }
}
