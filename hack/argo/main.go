// The workflow-controller of Argo Workflows (the module pinned in go.mod) as `make bench-pipeline`
// runs it: upstream's cmd/workflow-controller/main.go with two changes only, so the peer stays on
// loopback. Upstream serves /healthz on ":6060" (every interface) unconditionally; here it is
// --healthz-addr (default 127.0.0.1:0, a free loopback port). And there is one instance, so
// leader election is off (upstream's LEADER_ELECTION_DISABLE=true path). Everything the
// controller does to workflows is upstream's code (controller.NewWorkflowController, Run).
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	_ "time/tzdata"

	"github.com/argoproj/pkg/stats"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	runtimeutil "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	argo "github.com/argoproj/argo-workflows/v4"
	wfclientset "github.com/argoproj/argo-workflows/v4/pkg/client/clientset/versioned"
	cmdutil "github.com/argoproj/argo-workflows/v4/util/cmd"
	kubecli "github.com/argoproj/argo-workflows/v4/util/kube/cli"
	"github.com/argoproj/argo-workflows/v4/util/logging"
	"github.com/argoproj/argo-workflows/v4/util/logs"
	pprofutil "github.com/argoproj/argo-workflows/v4/util/pprof"
	"github.com/argoproj/argo-workflows/v4/workflow/common"
	"github.com/argoproj/argo-workflows/v4/workflow/controller"
	"github.com/argoproj/argo-workflows/v4/workflow/metrics"
)

const CLIName = "workflow-controller"

func NewRootCommand() *cobra.Command {
	var (
		clientConfig            clientcmd.ClientConfig
		configMap               string
		executorImage           string
		executorImagePullPolicy string
		logLevel                string
		glogLevel               int
		logFormat               string
		workflowWorkers         int
		workflowTTLWorkers      int
		podCleanupWorkers       int
		cronWorkflowWorkers     int
		workflowArchiveWorkers  int
		burst                   int
		qps                     float32
		namespaced              bool
		managedNamespace        string
		executorPlugins         bool
		healthzAddr             string
	)

	command := cobra.Command{
		Use:   CLIName,
		Short: "workflow-controller is the controller to operate on workflows",
		RunE: func(c *cobra.Command, args []string) error {
			defer runtimeutil.HandleCrashWithContext(c.Context(), runtimeutil.PanicHandlers...)
			ctx, log, err := cmdutil.CmdContextWithLogger(c, logLevel, logFormat)
			if err != nil {
				return err
			}
			cmdutil.SetGLogLevel(glogLevel)
			stats.RegisterStackDumper()
			stats.StartStatsTicker(5 * time.Minute)
			pprofutil.Init(c.Context())

			config, err := clientConfig.ClientConfig()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()

			version := argo.GetVersion()
			config = restclient.AddUserAgent(config, fmt.Sprintf("argo-workflows/%s argo-controller", version.Version))
			config.Burst = burst
			config.QPS = qps
			logs.AddK8SLogTransportWrapper(ctx, config)
			metrics.AddMetricsTransportWrapper(ctx, config)

			namespace, _, err := clientConfig.Namespace()
			if err != nil {
				return err
			}
			kubeclientset := kubernetes.NewForConfigOrDie(config)
			wfclientset := wfclientset.NewForConfigOrDie(config)
			if !namespaced && managedNamespace != "" {
				managedNamespace = ""
			}
			if namespaced && managedNamespace == "" {
				managedNamespace = namespace
			}
			wfController, err := controller.NewWorkflowController(ctx, config, kubeclientset, wfclientset, namespace, managedNamespace, executorImage, executorImagePullPolicy, logFormat, configMap, executorPlugins)
			if err != nil {
				return err
			}
			log.Info(ctx, "Leader election is turned off. Running in single-instance mode")
			go wfController.Run(ctx, workflowWorkers, workflowTTLWorkers, podCleanupWorkers, cronWorkflowWorkers, workflowArchiveWorkers)
			go wfController.RunPrometheusServer(ctx, false)

			http.Handle("/healthz", controller.LogMiddleware(log, http.HandlerFunc(wfController.Healthz)))
			listener, err := net.Listen("tcp", healthzAddr)
			if err != nil {
				return err
			}
			// The bench reads the chosen port from this line.
			log.WithField("addr", listener.Addr().String()).Info(ctx, "healthz listening")
			go func() {
				log.Error(ctx, http.Serve(listener, nil).Error())
			}()
			<-ctx.Done()
			return nil
		},
	}

	clientConfig = kubecli.AddKubectlFlagsToCmd(&command)
	command.AddCommand(cmdutil.NewVersionCmd(CLIName))
	command.Flags().StringVar(&configMap, "configmap", common.ConfigMapName, "Name of K8s configmap to retrieve workflow controller configuration")
	command.Flags().StringVar(&executorImage, "executor-image", "", "Executor image to use (overrides value in configmap)")
	command.Flags().StringVar(&executorImagePullPolicy, "executor-image-pull-policy", "", "Executor imagePullPolicy to use (overrides value in configmap)")
	command.Flags().StringVar(&logLevel, "loglevel", "info", "Set the logging level. One of: debug|info|warn|error")
	command.Flags().IntVar(&glogLevel, "gloglevel", 0, "Set the glog logging level")
	command.Flags().StringVar(&logFormat, "log-format", "text", "The formatter to use for logs. One of: text|json")
	command.Flags().IntVar(&workflowWorkers, "workflow-workers", 32, "Number of workflow workers")
	command.Flags().IntVar(&workflowTTLWorkers, "workflow-ttl-workers", 4, "Number of workflow TTL workers")
	command.Flags().IntVar(&podCleanupWorkers, "pod-cleanup-workers", 4, "Number of pod cleanup workers")
	command.Flags().IntVar(&cronWorkflowWorkers, "cron-workflow-workers", 8, "Number of cron workflow workers")
	command.Flags().IntVar(&workflowArchiveWorkers, "workflow-archive-workers", 8, "Number of workflow archive workers")
	command.Flags().IntVar(&burst, "burst", 30, "Maximum burst for throttle.")
	command.Flags().Float32Var(&qps, "qps", 20.0, "Queries per second")
	command.Flags().BoolVar(&namespaced, "namespaced", false, "run workflow-controller as namespaced mode")
	command.Flags().StringVar(&managedNamespace, "managed-namespace", "", "namespace that workflow-controller watches, default to the installation namespace")
	command.Flags().BoolVar(&executorPlugins, "executor-plugins", false, "enable executor plugins")
	command.Flags().StringVar(&healthzAddr, "healthz-addr", "127.0.0.1:0", "Address of /healthz (upstream: :6060)")
	ctx, log, err := cmdutil.CmdContextWithLogger(&command, logLevel, logFormat)
	if err != nil {
		logging.InitLogger().WithError(err).WithFatal().Error(command.Context(), "Failed to create workflow-controller logger")
		os.Exit(1)
	}
	viper.AutomaticEnv()
	viper.SetEnvPrefix("ARGO")
	viper.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	if err := viper.BindPFlags(command.Flags()); err != nil {
		log.WithFatal().WithError(err).Error(ctx, "failed to bind flags to env vars")
	}
	command.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Changed && viper.IsSet(f.Name) {
			val := viper.Get(f.Name)
			if err := command.Flags().Set(f.Name, fmt.Sprintf("%v", val)); err != nil {
				log.WithFatal().WithError(err).WithFields(logging.Fields{"flag": f.Name, "value": val}).Error(ctx, "failed to set flag")
			}
		}
	})
	return &command
}

func main() {
	if err := NewRootCommand().Execute(); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
}
