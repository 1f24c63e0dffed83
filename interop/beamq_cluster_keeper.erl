%% @doc Keeps a BEAM member fully meshed with its cluster, as beamq's `src/cluster/mesh.rs'
%% (and EMQX 4's `ekka_node_monitor'): every 0.5 s it connects to each member that is not
%% connected, retries an unreachable member with a backoff doubling 1 s -> 16 s, and never
%% connects to a node that is not a member.
%%
%% Each member listed at boot is asked once, on its first connection, `is_member(Self)': a
%% member that left or removed this node meanwhile answers `false' and is dropped, so a node
%% force-left while it was down stays out after its restart.
%%
%% Connect attempts and the `is_member' call run in short-lived worker processes, so a slow
%% connect (up to net_setuptime) never stalls the tick for the other members.
-module(beamq_cluster_keeper).
-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include_lib("kernel/include/logger.hrl").

-define(TICK, 500).
-define(BACKOFF_MIN, 1000).
-define(BACKOFF_MAX, 16000).
-define(PEER_TIMEOUT, 5000).

-record(state, {unverified :: [node()],
                backoff = #{} :: #{node() => {integer(), pos_integer()}},
                pending = #{} :: #{node() => reference()}}).

start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

init([]) ->
    self() ! tick,
    {ok, #state{unverified = beamq_cluster:others()}}.

handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

handle_cast(_Req, S) ->
    {noreply, S}.

handle_info(tick, S) ->
    erlang:send_after(?TICK, self(), tick),
    {noreply, tick(S)};
handle_info({result, Node, Connected, Verified}, #state{} = S) ->
    {noreply, result(Node, Connected, Verified, S)};
handle_info({'DOWN', Ref, process, _Pid, _Reason}, #state{pending = P} = S) ->
    {noreply, S#state{pending = maps:filter(fun(_, R) -> R =/= Ref end, P)}};
handle_info(_Info, S) ->
    {noreply, S}.

tick(S) ->
    case is_alive() of
        false -> S;
        true -> tick(beamq_cluster:others(), S)
    end.

tick(Others, #state{unverified = U, backoff = B, pending = P} = S0) ->
    S = S0#state{unverified = [N || N <- U, lists:member(N, Others)],
                 backoff = maps:with(Others, B)},
    Now = erlang:monotonic_time(millisecond),
    Connected = nodes(),
    lists:foldl(fun(N, Acc) ->
                        IsConnected = lists:member(N, Connected),
                        Unverified = lists:member(N, Acc#state.unverified),
                        Due = case maps:find(N, Acc#state.backoff) of
                                  {ok, {Next, _}} -> Next =< Now;
                                  error -> true
                              end,
                        case maps:is_key(N, P) orelse (IsConnected andalso not Unverified)
                            orelse (not IsConnected andalso not Due) of
                            true -> Acc;
                            false -> start_worker(N, IsConnected, Unverified, Acc)
                        end
                end, S, Others).

start_worker(Node, IsConnected, Unverified, #state{pending = P} = S) ->
    Keeper = self(),
    {_Pid, Ref} =
        spawn_monitor(fun() ->
                              Ok = IsConnected orelse net_kernel:connect_node(Node) =:= true,
                              Verified = case Ok andalso Unverified of
                                             true -> ask_is_member(Node);
                                             false -> unknown
                                         end,
                              Keeper ! {result, Node, Ok, Verified}
                      end),
    S#state{pending = P#{Node => Ref}}.

ask_is_member(Node) ->
    try erpc:call(Node, beamq_cluster, is_member, [node()], ?PEER_TIMEOUT) of
        true -> true;
        false -> false;
        _ -> unknown
    catch
        _:_ -> unknown
    end.

result(Node, Connected, Verified, #state{pending = P, backoff = B, unverified = U} = S) ->
    case maps:take(Node, P) of
        {Ref, P1} -> erlang:demonitor(Ref, [flush]);
        error -> P1 = P
    end,
    B1 = case Connected of
             true ->
                 maps:is_key(Node, B) andalso
                     ?LOG_INFO("beamq_cluster_keeper: connected to cluster member ~p", [Node]),
                 maps:remove(Node, B);
             false ->
                 Delay = case maps:find(Node, B) of
                             {ok, {_, D}} -> D;
                             error -> ?BACKOFF_MIN
                         end,
                 ?LOG_DEBUG("beamq_cluster_keeper: member ~p unreachable, retry in ~p ms",
                            [Node, Delay]),
                 B#{Node => {erlang:monotonic_time(millisecond) + Delay,
                             min(Delay * 2, ?BACKOFF_MAX)}}
         end,
    U1 = case Verified of
             false -> beamq_cluster:forget(Node), U -- [Node];
             true -> U -- [Node];
             unknown -> U
         end,
    S#state{pending = P1, backoff = B1, unverified = U1}.
