%% @doc The `beamq_interop' application: makes a stock OTP 25 node a full beamq routing peer
%% (docs/route-protocol.md) and cluster member (docs/cluster.md).
%%
%% Supervision, rest_for_one in this order: the pg scope `beamq_route' (only when nobody has
%% started it yet), `beamq_broker', `beamq_cluster', `beamq_cluster_keeper'. A restarted
%% scope restarts the broker, whose group memberships died with the old scope.
-module(beamq_interop_app).
-behaviour(application).
-behaviour(supervisor).

-export([start/2, stop/1, init/1]).

start(_Type, _Args) ->
    supervisor:start_link({local, beamq_interop_sup}, ?MODULE, []).

stop(_State) ->
    ok.

init([]) ->
    Scope = [#{id => beamq_route, start => {pg, start_link, [beamq_route]}}
             || whereis(beamq_route) =:= undefined],
    Children = Scope ++
        [#{id => beamq_broker, start => {beamq_broker, start_link, []}},
         #{id => beamq_cluster, start => {beamq_cluster, start_link, []}},
         #{id => beamq_cluster_keeper, start => {beamq_cluster_keeper, start_link, []}}],
    {ok, {#{strategy => rest_for_one, intensity => 5, period => 10}, Children}}.
