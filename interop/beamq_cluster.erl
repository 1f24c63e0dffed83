%% @doc Cluster membership on a BEAM node, with exactly the functions and replies of beamq's
%% `beamq_cluster' (docs/cluster.md; EMQX 4's `emqx_ctl cluster' over `ekka_cluster'), so beamq
%% nodes call a BEAM member exactly as they call each other, e.g.
%% `erpc:call(BeamNode, beamq_cluster, admit, [Node])'.
%%
%% The registered process `beamq_cluster' only holds the member list and writes it to
%% `<data_dir>/cluster.eterm' (app env `data_dir', default "beamq_data"; two terms
%% `{members, [Node]}.' and `{force_left, Bool}.', written to a temp file then renamed). Calls
%% to other nodes run in the caller's process (an operator shell, or the erpc process of a
%% peer's request), never inside the server, so two members calling each other cannot
%% deadlock. Peer calls are bounded by 5 s each and best effort, as on beamq. The mesh is kept
%% by `beamq_cluster_keeper'.
-module(beamq_cluster).
-behaviour(gen_server).

%% Operator and peer functions (docs/cluster.md, "Functions").
-export([join/1, leave/0, force_leave/1, status/0, admit/1, member_joined/1, member_left/1,
         forced_out/0, is_member/1]).
%% For the keeper and the app.
-export([start_link/0, members/0, others/0, forget/1, file_path/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include_lib("kernel/include/logger.hrl").

-define(PEER_TIMEOUT, 5000).
-define(MAX_FILE, 1048576).
-define(FILE_NAME, "cluster.eterm").

-record(state, {members :: [node()], force_left :: boolean(), path :: file:filename()}).

%%--------------------------------------------------------------------
%% Operator functions

%% @doc Leaves the current cluster if any, asks `Node' to admit this node, takes its member
%% list and connects to every member.
-spec join(node()) -> ok | {error, term()}.
join(Node) when is_atom(Node) ->
    Me = node(),
    case Node =:= Me of
        true ->
            {error, cannot_join_self};
        false ->
            case lists:member(Node, members()) andalso lists:member(Node, nodes()) of
                true -> {error, already_in_cluster};
                false -> join_connected(Node, Me)
            end
    end;
join(_) ->
    {error, badarg}.

%% Reachability is checked over a hidden connection, closed again before leaving: a visible
%% one would make `global' mesh the old cluster with the new one. Leaving disconnects through
%% `global:disconnect/0' (no `lost_connection' reports, so `global' on the others does not
%% take connections down to prevent overlapping partitions), and only then is `Node'
%% connected visibly and asked to admit this node.
join_connected(Node, Me) ->
    case reachable(Node) of
        true ->
            _ = case others() of
                    [] -> ok;
                    _ -> leave()
                end,
            case admit_me(Node, Me, 3) of
                {ok, {ok, List}} when is_list(List) ->
                    Members = lists:usort([Me | [M || M <- List, is_atom(M)]]),
                    ok = set(Members, false),
                    [net_kernel:connect_node(P) || P <- others()],
                    ?LOG_NOTICE("beamq_cluster: joined the cluster of ~p", [Node]),
                    ok;
                {ok, Other} -> {error, Other};
                {error, Reason} -> {error, Reason}
            end;
        false ->
            {error, {node_down, Node}}
    end.

reachable(Node) ->
    lists:member(Node, nodes()) orelse
        case net_kernel:hidden_connect_node(Node) of
            true ->
                lists:member(Node, nodes(hidden)) andalso erlang:disconnect_node(Node),
                true;
            _ ->
                false
        end.

%% The connection may be taken down once more by `global' on the other side while it handles
%% the departure from the old cluster: reconnect and ask again (admit is idempotent).
admit_me(Node, Me, Tries) ->
    _ = net_kernel:connect_node(Node),
    case peer_call(Node, admit, [Me]) of
        {error, noconnection} when Tries > 1 ->
            timer:sleep(300),
            admit_me(Node, Me, Tries - 1);
        R ->
            R
    end.

%% @doc Tells every other member, then stands alone.
-spec leave() -> ok | {error, node_not_in_cluster}.
leave() ->
    case others() of
        [] ->
            {error, node_not_in_cluster};
        Others ->
            tell(Others, member_left, [node()]),
            ok = set([node()], false),
            disconnect_all(Others),
            ?LOG_NOTICE("beamq_cluster: left the cluster"),
            ok
    end.

%% @doc Removes another member; it is told (`forced_out/0') when connected, and will not come
%% back by itself either way.
-spec force_leave(node()) -> ok | {error, node_not_in_cluster | cannot_force_leave_self}.
force_leave(Node) when Node =:= node() ->
    {error, cannot_force_leave_self};
force_leave(Node) ->
    case lists:member(Node, members()) of
        false ->
            {error, node_not_in_cluster};
        true ->
            _ = lists:member(Node, nodes()) andalso peer_call(Node, forced_out, []),
            ok = gen_server:call(?MODULE, {remove, Node}),
            tell(others(), member_left, [Node]),
            erlang:disconnect_node(Node),
            ?LOG_NOTICE("beamq_cluster: removed ~p from the cluster", [Node]),
            ok
    end.

%% @doc `[{running_nodes, [...]}] ++ [{stopped_nodes, [...]} || Stopped =/= []]': running is
%% this node plus the connected members, both lists sorted.
-spec status() -> [{running_nodes | stopped_nodes, [node()]}].
status() ->
    Me = node(),
    Connected = nodes(),
    {Running, Stopped} = lists:partition(fun(M) -> M =:= Me orelse lists:member(M, Connected) end,
                                         members()),
    [{running_nodes, Running}] ++ [{stopped_nodes, Stopped} || Stopped =/= []].

%%--------------------------------------------------------------------
%% Peer functions

%% @doc On the joined node: tell the own members, add `Node', reply with the member list.
-spec admit(node()) -> {ok, [node()]}.
admit(Node) when is_atom(Node) ->
    tell([P || P <- others(), P =/= Node], member_joined, [Node]),
    ok = gen_server:call(?MODULE, {add, Node}),
    {ok, members()}.

-spec member_joined(node()) -> ok.
member_joined(Node) when is_atom(Node) ->
    gen_server:call(?MODULE, {add, Node}).

%% @doc Another member left or was removed: drop it and disconnect it. The disconnect waits
%% a moment so this reply reaches a node that is telling us about itself.
-spec member_left(node()) -> ok.
member_left(Node) when is_atom(Node) ->
    ok = gen_server:call(?MODULE, {remove, Node}),
    later_disconnect([Node]),
    ok.

%% @doc This node was force-left: stand alone, record it, disconnect the others after the reply.
-spec forced_out() -> ok.
forced_out() ->
    ok = gen_server:call(?MODULE, forced_out),
    ?LOG_WARNING("beamq_cluster: removed from the cluster by force-leave; standing alone"),
    erlang:send_after(200, ?MODULE, disconnect_all),
    ok.

-spec is_member(node()) -> boolean().
is_member(Node) ->
    lists:member(Node, members()).

%%--------------------------------------------------------------------
%% For the keeper

-spec members() -> [node()].
members() ->
    gen_server:call(?MODULE, members).

-spec others() -> [node()].
others() ->
    lists:delete(node(), members()).

%% @doc A member no longer lists this node (it said `is_member' false): drop it.
-spec forget(node()) -> ok.
forget(Node) ->
    ?LOG_NOTICE("beamq_cluster: ~p no longer lists this node; dropped", [Node]),
    member_left(Node).

-spec file_path() -> file:filename().
file_path() ->
    Dir = application:get_env(beamq_interop, data_dir, "beamq_data"),
    filename:join(unicode:characters_to_list(Dir), ?FILE_NAME).

%%--------------------------------------------------------------------
%% gen_server

start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

init([]) ->
    Path = file_path(),
    case load(Path) of
        {ok, Members, ForceLeft} ->
            %% A force-left node starts alone (docs/cluster.md, "Boot and mesh").
            S = case ForceLeft of
                    true -> #state{members = [node()], force_left = true, path = Path};
                    false -> #state{members = lists:usort([node() | Members]), force_left = false,
                                    path = Path}
                end,
            case save(S) of
                ok -> {ok, S};
                {error, R} -> {stop, {cannot_write, Path, R}}
            end;
        {error, Reason} ->
            {stop, {bad_cluster_file, Path, Reason}}
    end.

handle_call(members, _From, S) ->
    {reply, S#state.members, S};
handle_call({set, Members, ForceLeft}, _From, S) ->
    update(S#state{members = Members, force_left = ForceLeft});
handle_call({add, Node}, _From, S) ->
    update(S#state{members = lists:usort([Node | S#state.members])});
handle_call({remove, Node}, _From, S) when Node =/= node() ->
    update(S#state{members = S#state.members -- [Node]});
handle_call({remove, _Self}, _From, S) ->
    {reply, ok, S};
handle_call(forced_out, _From, S) ->
    update(S#state{members = [node()], force_left = true});
handle_call(Req, _From, S) ->
    ?LOG_WARNING("beamq_cluster: unexpected call ~0p ignored", [Req]),
    {reply, {error, unknown_call}, S}.

handle_cast(Req, S) ->
    ?LOG_WARNING("beamq_cluster: unexpected cast ~0p ignored", [Req]),
    {noreply, S}.

handle_info(disconnect_all, S) ->
    disconnect_all([N || N <- nodes(), not lists:member(N, S#state.members)]),
    {noreply, S};
handle_info({disconnect, Nodes}, S) ->
    [erlang:disconnect_node(N) || N <- Nodes, not lists:member(N, S#state.members)],
    {noreply, S};
handle_info(Info, S) ->
    ?LOG_WARNING("beamq_cluster: unexpected message ~0P ignored", [Info, 20]),
    {noreply, S}.

%%--------------------------------------------------------------------
%% Internals

set(Members, ForceLeft) ->
    gen_server:call(?MODULE, {set, Members, ForceLeft}).

update(S) ->
    case save(S) of
        ok -> ok;
        {error, R} -> ?LOG_ERROR("beamq_cluster: cannot save ~s: ~p", [S#state.path, R])
    end,
    {reply, ok, S}.

%% Standing alone: every visible node goes, through `global:disconnect/0' so that `global' on
%% the others does not react with overlapping-partition disconnects among themselves.
disconnect_all(Nodes) ->
    _ = global:disconnect(),
    [erlang:disconnect_node(N) || N <- Nodes],
    ok.

%% Nodes that are still not members 200 ms from now are disconnected.
later_disconnect(Nodes) ->
    erlang:send_after(200, ?MODULE, {disconnect, Nodes}),
    ok.

%% `erpc:call' to `beamq_cluster:F(Args)' on `Node': `{ok, Reply}' or `{error, Reason}'.
peer_call(Node, F, Args) ->
    try erpc:call(Node, ?MODULE, F, Args, ?PEER_TIMEOUT) of
        R -> {ok, R}
    catch
        error:{erpc, Reason} -> {error, Reason};
        Class:Reason -> {error, {Class, Reason}}
    end.

%% Tells each node `beamq_cluster:F(Args)' in parallel, best effort (bounded by 5 s).
tell([], _F, _Args) ->
    ok;
tell(Nodes, F, Args) ->
    Rs = erpc:multicall(Nodes, ?MODULE, F, Args, ?PEER_TIMEOUT),
    [?LOG_INFO("beamq_cluster: ~p not told ~p: ~0p", [N, F, R])
     || {N, R} <- lists:zip(Nodes, Rs), R =/= {ok, ok}],
    ok.

load(Path) ->
    case file:read_file_info(Path) of
        {error, enoent} ->
            {ok, [], false};
        {ok, Info} when element(2, Info) > ?MAX_FILE ->
            {error, too_large};
        {ok, _} ->
            case file:consult(Path) of
                {ok, Terms} ->
                    Members = proplists:get_value(members, Terms),
                    ForceLeft = proplists:get_value(force_left, Terms, false),
                    case is_list(Members) andalso lists:all(fun is_atom/1, Members)
                        andalso is_boolean(ForceLeft) of
                        true -> {ok, Members, ForceLeft};
                        false -> {error, bad_terms}
                    end;
                {error, R} ->
                    {error, R}
            end;
        {error, R} ->
            {error, R}
    end.

save(#state{members = Members, force_left = ForceLeft, path = Path}) ->
    Tmp = Path ++ ".tmp",
    Text = io_lib:format("~p.~n~p.~n", [{members, Members}, {force_left, ForceLeft}]),
    case filelib:ensure_dir(Path) of
        ok ->
            case file:write_file(Tmp, Text) of
                ok -> file:rename(Tmp, Path);
                E -> E
            end;
        E ->
            E
    end.
